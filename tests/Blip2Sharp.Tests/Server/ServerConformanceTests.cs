using System.ClientModel;
using System.Text.Json.Nodes;
using Blip2Sharp.Demo;
using Microsoft.Extensions.AI;
using OpenAI;
using Xunit;

namespace Blip2Sharp.Tests.Server;

/// <summary>One `blip2 serve` on the demo model for the tests of a class.</summary>
public sealed class DemoServer : IDisposable
{
    public ServeProcess Server { get; } = new("--db", Path.Combine(Fixtures.TempDir(), "index.db"));

    public void Dispose() => Server.Dispose();
}

/// <summary>
/// Clients nobody here wrote talk to `blip2 serve` on the demo model: the official `openai` npm package and
/// Microsoft.Extensions.AI.OpenAI's chat client. Their texts equal `blip2 caption` / `blip2 ask` with the same
/// settings.
/// </summary>
public class ServerConformanceTests(DemoServer demo) : IClassFixture<DemoServer>
{
    private static readonly Scene TwoObjects = new("white",
        [new SceneObject(Shape.Circle, "red", true, 0, 1), new SceneObject(Shape.Square, "blue", false, 2, 0)]);
    private const string Question = "what colour is the circle?";

    private static string ImageFile()
    {
        string path = Path.Combine(Fixtures.TempDir(), "scene.png");
        File.WriteAllBytes(path, TwoObjects.RenderPng(96));
        return path;
    }

    private static JsonNode Cli(params string[] args)
    {
        var r = CliRunner.Run([.. args, "--json"]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        return JsonNode.Parse(r.Stdout)!;
    }

    /// <summary>`blip2 caption` (max 30 new tokens, greedy) and `blip2 ask` with the server's defaults (greedy,
    /// 30).</summary>
    private static (string Caption, int CaptionTokens, string Answer, int AnswerTokens,
        int QuestionPromptTokens) Expected(string image)
    {
        var caption = Cli("caption", image, "--max-new-tokens", "30")["results"]![0]!;
        var answer = Cli("ask", image, Question, "--num-beams", "1", "--max-new-tokens", "30", "--min-new-tokens", "0",
            "--length-penalty", "1")["results"]![0]!;
        // The prompt's tokens (with the tokenizer's BOS) and the 32 query tokens the image becomes.
        int promptIds = Cli("tokenize", $"Question: {Question} Answer:")["results"]![0]!["ids"]!.AsArray().Count;
        return ((string)caption["text"]!, caption["sequences"]![0]!["generated_ids"]!.AsArray().Count,
            (string)answer["text"]!, answer["sequences"]![0]!["generated_ids"]!.AsArray().Count, 32 + promptIds);
    }

    private const string OpenAiScript = """
        import OpenAI from "openai";
        import fs from "node:fs";
        const [base, image, question] = process.argv.slice(2);
        const client = new OpenAI({ baseURL: new URL("v1", base).href, apiKey: "not-needed" });
        const url = "data:image/png;base64," + fs.readFileSync(image).toString("base64");
        const caption = await client.chat.completions.create({
          model: "blip2-demo", temperature: 0, max_tokens: 30,
          messages: [{ role: "user", content: [{ type: "image_url", image_url: { url } }] }],
        });
        const stream = await client.chat.completions.create({
          model: "blip2-demo", temperature: 0, max_tokens: 30, stream: true, stream_options: { include_usage: true },
          messages: [{ role: "user", content: [{ type: "image_url", image_url: { url } }, { type: "text", text: question }] }],
        });
        let answer = "", finish = null, usage = null, chunks = 0;
        for await (const chunk of stream) {
          chunks++;
          if (chunk.usage) usage = chunk.usage;
          for (const c of chunk.choices) {
            if (c.delta?.content) answer += c.delta.content;
            if (c.finish_reason) finish = c.finish_reason;
          }
        }
        console.log(JSON.stringify({ caption: caption.choices[0].message.content, captionFinish: caption.choices[0].finish_reason,
          captionUsage: caption.usage, model: caption.model, answer, finish, usage, chunks }));
        """;

    [Fact]
    public void TheOfficialOpenAiNpmClientCaptionsAndStreamsAnAnswer()
    {
        string image = ImageFile();
        var expected = Expected(image);
        var r = NodeTools.RunScript(OpenAiScript, demo.Server.BaseAddress.ToString(), image, Question);
        Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
        var j = JsonNode.Parse(r.Stdout)!;
        Assert.Equal(expected.Caption, (string)j["caption"]!);
        Assert.Equal("stop", (string)j["captionFinish"]!);
        Assert.Equal("blip2-demo", (string)j["model"]!);
        Assert.Equal(expected.CaptionTokens, (int)j["captionUsage"]!["completion_tokens"]!);
        Assert.Equal(33, (int)j["captionUsage"]!["prompt_tokens"]!);               // 32 query tokens and BOS
        Assert.Equal(expected.Answer, (string)j["answer"]!);
        Assert.Equal("stop", (string)j["finish"]!);
        Assert.Equal(expected.QuestionPromptTokens, (int)j["usage"]!["prompt_tokens"]!);
        Assert.Equal(expected.AnswerTokens, (int)j["usage"]!["completion_tokens"]!);
        Assert.Equal(expected.QuestionPromptTokens + expected.AnswerTokens, (int)j["usage"]!["total_tokens"]!);
        Assert.True((int)j["chunks"]! >= 3, r.Stdout);                          // role, text, finish (and usage)
    }

    [Fact]
    public async Task MicrosoftExtensionsAiOpenAiChatClientCaptionsAndStreamsAnAnswer()
    {
        string image = ImageFile();
        var expected = Expected(image);
        IChatClient client = new OpenAI.Chat.ChatClient("blip2-demo", new ApiKeyCredential("not-needed"),
            new OpenAIClientOptions { Endpoint = new Uri(demo.Server.BaseAddress, "v1") }).AsIChatClient();
        var png = new DataContent(await File.ReadAllBytesAsync(image), "image/png");
        var caption = await client.GetResponseAsync([new ChatMessage(ChatRole.User, [png])],
            new ChatOptions { Temperature = 0, MaxOutputTokens = 30 });
        Assert.Equal(expected.Caption, caption.Text);
        Assert.Equal(ChatFinishReason.Stop, caption.FinishReason);
        Assert.Equal(expected.CaptionTokens, caption.Usage!.OutputTokenCount);

        var text = new System.Text.StringBuilder();
        ChatFinishReason? finish = null;
        int updates = 0;
        await foreach (var u in client.GetStreamingResponseAsync([new ChatMessage(ChatRole.User,
            [png, new TextContent(Question)])],
            new ChatOptions { Temperature = 0, MaxOutputTokens = 30 }))
        {
            updates++;
            text.Append(u.Text);
            finish ??= u.FinishReason;
        }
        Assert.Equal(expected.Answer, text.ToString());
        Assert.Equal(ChatFinishReason.Stop, finish);
        Assert.True(updates >= 2);
    }
}
