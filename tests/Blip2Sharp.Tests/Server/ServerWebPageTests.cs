using System.Text.Json.Nodes;
using Blip2Sharp.Demo;
using Xunit;

namespace Blip2Sharp.Tests.Server;

/// <summary>
/// The page at / in headless Chromium (Debian's, driven by playwright-core): it captions an uploaded image, answers a
/// question about it in the chat, adds it to the index and finds it by text, with a thumbnail.
/// </summary>
public class ServerWebPageTests(DemoServer demo) : IClassFixture<DemoServer>
{
    private const string Script = """
        import { chromium } from "playwright-core";
        const [base, image, screenshot, question] = process.argv.slice(2);
        const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
        try {
          const page = await browser.newPage({ viewport: { width: 1100, height: 800 } });
          const errors = [];
          page.on("pageerror", e => errors.push(String(e)));
          await page.goto(base);
          await page.setInputFiles("#file", image);
          await page.waitForSelector("#caption[data-state=done], #caption[data-state=error]", { timeout: 60000 });
          const state = await page.getAttribute("#caption", "data-state");
          const caption = await page.textContent("#caption");
          const shown = await page.evaluate(() => { const i = document.getElementById("preview"); return i.complete && i.naturalWidth > 0; });
          await page.fill("#question", question);
          await page.click("#send");
          await page.waitForSelector(".answer[data-state]", { timeout: 60000 });
          const answer = await page.textContent(".answer");
          await page.click("#add");
          await page.waitForSelector("#added[data-state]", { timeout: 60000 });
          const added = await page.textContent("#added");
          await page.fill("#query", "a green triangle");
          await page.click("#search button");
          await page.waitForSelector("#hits[data-state]", { timeout: 60000 });
          const thumbnails = await page.evaluate(() => [...document.querySelectorAll(".hit img")].map(i => i.complete ? i.naturalWidth : 0));
          await page.screenshot({ path: screenshot, fullPage: true });
          console.log(JSON.stringify({ state, caption, shown, answer, added, thumbnails, errors }));
        } finally {
          await browser.close();
        }
        """;

    [Fact]
    public void ThePageCaptionsAnUploadedImageAnswersAQuestionAndFindsItByText()
    {
        var scene = new Scene("beige", [new SceneObject(Shape.Triangle, "green", true, 1, 1)]);
        string image = Path.Combine(Fixtures.TempDir(), "upload.png");
        File.WriteAllBytes(image, scene.RenderPng(96));
        var cli = CliRunner.Run("caption", image, "--max-new-tokens", "30", "--json");
        Assert.True(cli.ExitCode == 0, cli.Stderr);
        string expected = (string)JsonNode.Parse(cli.Stdout)!["results"]![0]!["text"]!;
        const string question = "what shape is in the middle?";
        var ask = CliRunner.Run("ask", image, question, "--num-beams", "1", "--max-new-tokens", "30",
            "--min-new-tokens", "0", "--length-penalty", "1", "--json");
        Assert.True(ask.ExitCode == 0, ask.Stderr);
        string answer = (string)JsonNode.Parse(ask.Stdout)!["results"]![0]!["text"]!;

        string screenshot = Path.Combine(AppContext.BaseDirectory, "test-output", "web-page-caption.png");
        Directory.CreateDirectory(Path.GetDirectoryName(screenshot)!);
        var r = NodeTools.RunScript(Script, demo.Server.BaseAddress.ToString(), image, screenshot, question);
        Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
        var j = JsonNode.Parse(r.Stdout)!;
        Assert.Equal("done", (string)j["state"]!);
        Assert.Equal(expected, (string)j["caption"]!);
        Assert.True((bool)j["shown"]!, "the uploaded image is shown");
        Assert.Equal($"blip2: {answer}", (string)j["answer"]!);                 // streamed into the chat
        Assert.StartsWith("added", (string)j["added"]!);
        var thumbnails = j["thumbnails"]!.AsArray().Select(w => (int)w!).ToList();
        Assert.NotEmpty(thumbnails);
        Assert.Contains(96, thumbnails);                                        // the uploaded image, found and shown
        Assert.Empty(j["errors"]!.AsArray());
        Assert.True(new FileInfo(screenshot).Length > 10_000, "a screenshot was written");
    }
}
