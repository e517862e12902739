using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Blip2Sharp.Demo;
using Xunit;

namespace Blip2Sharp.Tests.Server;

/// <summary>
/// BLIP-2's own routes, the model list, the OpenAPI document and the metrics on `blip2 serve` with the demo models;
/// values checked against the `blip2` commands that compute them one request at a time.
/// </summary>
public class ServerRoutesTests(DemoServer demo) : IClassFixture<DemoServer>
{
    private static readonly Scene Red = new("white", [new SceneObject(Shape.Circle, "red", true, 0, 1)]);
    private static readonly Scene Blue = new("gray",
        [new SceneObject(Shape.Square, "blue", false, 2, 0), new SceneObject(Shape.Triangle, "green", true, 1, 2)]);

    private static string File(Scene scene, string name)
    {
        string path = Path.Combine(Fixtures.TempDir(), name);
        System.IO.File.WriteAllBytes(path, scene.RenderPng(96));
        return path;
    }

    private static string DataUrl(string path) => "data:image/png;base64,"
        + Convert.ToBase64String(System.IO.File.ReadAllBytes(path));

    private async Task<JsonNode> Post(string path, JsonNode body)
    {
        var r = await demo.Server.Http.PostAsync(path,
            new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"));
        string text = await r.Content.ReadAsStringAsync();
        Assert.True(r.StatusCode == HttpStatusCode.OK, text);
        return JsonNode.Parse(text)!;
    }

    private static JsonNode Cli(params string[] args)
    {
        var r = CliRunner.Run(args);
        Assert.True(r.ExitCode == 0, r.Stderr);
        return JsonNode.Parse(r.Stdout)!;
    }

    [Fact]
    public async Task ModelsListBothModelsWithTheirModalities()
    {
        var j = JsonNode.Parse(await demo.Server.Http.GetStringAsync("/v1/models"))!;
        var data = j["data"]!.AsArray();
        Assert.Equal(["blip2-demo", "blip2-demo-retrieval"], data.Select(m => (string)m!["id"]!));
        Assert.Equal(["text", "image"], data[0]!["input_modalities"]!.AsArray().Select(x => (string)x!));
        Assert.Equal(["embedding"], data[1]!["output_modalities"]!.AsArray().Select(x => (string)x!));
    }

    [Fact]
    public async Task TheOpenApiDocumentListsEveryRoute()
    {
        var j = JsonNode.Parse(await demo.Server.Http.GetStringAsync("/openapi.json"))!;
        var paths = j["paths"]!.AsObject().Select(p => p.Key).ToHashSet();
        foreach (var p in new[] { "/v1/chat/completions", "/v1/embeddings", "/v1/match", "/v1/search", "/v1/index",
            "/v1/models", "/health", "/v1/images/{id}" })
            Assert.Contains(p, paths);
        // The chat request's schema is documented, field by field.
        var schemas = j["components"]!["schemas"]!.AsObject();
        Assert.True(schemas.ContainsKey("ChatCompletionRequest"), string.Join(", ", schemas.Select(s => s.Key)));
        Assert.True(schemas["ChatCompletionRequest"]!["properties"]!.AsObject().ContainsKey("max_tokens"));
    }

    [Fact]
    public async Task EmbeddingsEqualBlip2EmbedForTextsAndImages()
    {
        string image = File(Red, "red.png");
        string out1 = Path.Combine(Fixtures.TempDir(), "e.json");
        var cli = CliRunner.Run("embed", "--image", image, "--text", "a red circle", "--out", out1);
        Assert.True(cli.ExitCode == 0, cli.Stderr);
        var expected = JsonNode.Parse(System.IO.File.ReadAllText(out1))!;
        var j = await Post("/v1/embeddings",
            new JsonObject { ["input"] = new JsonArray("a red circle", DataUrl(image)) });
        var text = j["data"]![0]!;
        var img = j["data"]![1]!;
        Assert.Equal("text", (string)text["modality"]!);
        var cliText = expected["text_embeds"]![0]!.AsArray().Select(x => (float)x!).ToArray();
        var cliRows = expected["image_embeds"]![0]!.AsArray();
        Assert.Equal([cliText.Length], text["shape"]!.AsArray()
            .Select(x => (int)x!));      // embed_dim: 256 for blip2-itm-vit-g, 64 here
        Assert.Equal("image", (string)img["modality"]!);
        Assert.Equal([32, cliRows[0]!.AsArray().Count], img["shape"]!.AsArray().Select(x => (int)x!));
        var t = text["embedding"]!.AsArray().Select(x => (float)x!).ToArray();
        Assert.Equal(1.0, Math.Sqrt(t.Sum(x => (double)x * x)), 4);                      // unit length
        for (int i = 0; i < t.Length; i++) Assert.Equal(cliText[i], t[i], 5);
        var cliImage = cliRows.SelectMany(r => r!.AsArray().Select(x => (float)x!)).ToArray();
        var v = img["embedding"]!.AsArray().Select(x => (float)x!).ToArray();
        Assert.Equal(cliImage.Length, v.Length);
        for (int i = 0; i < v.Length; i++) Assert.Equal(cliImage[i], v[i], 5);
        Assert.True((int)j["usage"]!["prompt_tokens"]! > 0);
    }

    [Fact]
    public async Task MatchEqualsBlip2Match()
    {
        string image = File(Red, "red.png");
        string[] texts = ["a white background with a large red circle on the left",
            "a gray background with a small blue square on the right"];
        var cli = Cli("match", "--image", image, "--text", texts[0], "--text", texts[1], "--json");
        var j = await Post("/v1/match",
            new JsonObject { ["image"] = DataUrl(image), ["texts"] = new JsonArray(texts[0], texts[1]) });
        for (int k = 0; k < 2; k++)
        {
            Assert.Equal((double)cli["itm"]![0]![k]!, (double)j["data"]![k]!["itm"]!, 5);
            Assert.Equal((double)cli["itc"]![0]![k]!, (double)j["data"]![k]!["itc"]!, 5);
        }
        Assert.True((double)j["data"]![0]!["itm"]! > (double)j["data"]![1]!["itm"]!);
    }

    [Fact]
    public async Task IndexedUploadsAreFoundByTextAndByImageAndServed()
    {
        string red = File(Red, "red.png"), blue = File(Blue, "blue.png");
        var added = await Post("/v1/index", new JsonObject { ["images"] = new JsonArray(DataUrl(red), DataUrl(blue)) });
        var ids = added["data"]!.AsArray().Select(d => (string)d!["id"]!).ToList();
        Assert.Equal(2, ids.Distinct().Count());
        // Durable when the call returned: the files are on disk and in the index file.
        Assert.All(added["data"]!.AsArray(), d => Assert.True(System.IO.File.Exists((string)d!["path"]!)));

        var byText = await Post("/v1/search", new JsonObject { ["query"] = Blue.Captions()[0], ["top"] = 2 });
        Assert.Equal(ids[1], (string)byText["data"]![0]!["id"]!);
        Assert.NotNull(byText["data"]![0]!["itm_logit"]);
        var byImage = await Post("/v1/search", new JsonObject { ["image"] = DataUrl(red), ["top"] = 1 });
        Assert.Equal(ids[0], (string)byImage["data"]![0]!["id"]!);
        Assert.Equal(1.0, (double)byImage["data"]![0]!["score"]!, 3);                       // itself: cosine 1

        var file = await demo.Server.Http.GetAsync((string)byText["data"]![0]!["url"]!);
        Assert.Equal(HttpStatusCode.OK, file.StatusCode);
        Assert.Equal("image/png", file.Content.Headers.ContentType!.MediaType);
        var pixels = Blip2Sharp.Processing.ImageDecoder.Decode(await file.Content.ReadAsByteArrayAsync(), "served.png");
        var original = Blip2Sharp.Processing.ImageDecoder.DecodeFile(blue);
        Assert.Equal(original.Pixels, pixels.Pixels);                                       // stored losslessly
        Assert.Equal(HttpStatusCode.NotFound, (await demo.Server.Http.GetAsync("/v1/images/../../etc/passwd"))
            .StatusCode);
    }

    [Fact]
    public async Task ChatWithEarlierTurnsUsesTheChatPromptOfBlip2Chat()
    {
        string image = File(Red, "red.png");
        // blip2 chat, two turns, --json: the second answer is generated with the first turn in front.
        var chat = CliRunner.RunWithInput("what shape is it?\nwhat colour is it?\n", "chat", image, "--json");
        Assert.True(chat.ExitCode == 0, chat.Stderr);
        var lines = chat.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!)
            .ToList();
        var body = new JsonObject
        {
            ["messages"] = new JsonArray(
                new JsonObject { ["role"] = "system", ["content"] = "You are helpful." },
                new JsonObject { ["role"] = "user", ["content"] = "what shape is it?" },
                new JsonObject { ["role"] = "assistant", ["content"] = (string)lines[0]["answer"]! },
                new JsonObject
                {
                    ["role"] = "user",
                    ["content"] = new JsonArray(
                        new JsonObject { ["type"] = "image_url",
                            ["image_url"] = new JsonObject { ["url"] = DataUrl(image) } },
                        new JsonObject { ["type"] = "text", ["text"] = "what colour is it?" }),
                }),
        };
        var j = await Post("/v1/chat/completions", body);
        Assert.Equal((string)lines[1]["answer"]!, (string)j["choices"]![0]!["message"]!["content"]!);
    }

    [Fact]
    public async Task StopStringsAndSeveralSampledAnswers()
    {
        string image = File(Blue, "blue.png");
        var caption = Cli("caption", image, "--max-new-tokens", "30", "--json")["results"]![0]!["text"]!.ToString();
        string stop = " on the";
        var body = new JsonObject
        {
            ["stop"] = stop,
            ["messages"] = new JsonArray(new JsonObject
            {
                ["role"] = "user",
                ["content"] = new JsonArray(new JsonObject { ["type"] = "image_url",
                    ["image_url"] = new JsonObject { ["url"] = DataUrl(image) } }),
            }),
        };
        var j = await Post("/v1/chat/completions", body);
        Assert.Equal(caption[..caption.IndexOf(stop)], (string)j["choices"]![0]!["message"]!["content"]!);
        Assert.Equal("stop", (string)j["choices"]![0]!["finish_reason"]!);

        body.Remove("stop");
        body["n"] = 3;
        body["temperature"] = 1.0;
        body["seed"] = 5;
        body["max_tokens"] = 4;
        var sampled = await Post("/v1/chat/completions", body);
        Assert.Equal(3, sampled["choices"]!.AsArray().Count);
        Assert.All(sampled["choices"]!.AsArray(), c => Assert.Equal("length", (string)c!["finish_reason"]!));
        Assert.Equal(12, (int)sampled["usage"]!["completion_tokens"]!);
        var again = await Post("/v1/chat/completions", body);                             // a seeded sample reproduces
        Assert.Equal(sampled["choices"]!.ToJsonString(), again["choices"]!.ToJsonString());
    }
}
