using System.Text.Json.Nodes;
using Blip2Sharp.Clients;
using Blip2Sharp.Demo;
using Blip2Sharp.Generation;
using Blip2Sharp.Tasks;
using Microsoft.Extensions.AI;
using Xunit;

namespace Blip2Sharp.Tests;

/// <summary>The library's Microsoft.Extensions.AI clients on the demo model, against the pipeline alone and `blip2
/// embed`.</summary>
public class ChatClientTests
{
    private static readonly string Models = Path.Combine(AppContext.BaseDirectory, "models", "blip2-demo");

    private static byte[] Png(int seed) => Scene.Random(new Random(seed)).RenderPng(96);

    private static ChatMessage Ask(byte[] png, string? question) =>
        new(ChatRole.User, question is null ? [new DataContent(png, "image/png")]
            : [new DataContent(png, "image/png"), new TextContent(question)]);

    [Fact]
    public async Task ConcurrentCallsGetThePipelinesAnswers()
    {
        using var client = Blip2ChatClient.FromPretrained(Path.Combine(Models, "generation"));
        var pipeline = (Blip2Pipeline)client.GetService(typeof(Blip2Pipeline))!;
        var cases = Enumerable.Range(0, 8)
            .Select(i => (Png: Png(40 + i), Question: i % 2 == 0 ? null : "how many shapes are there?")).ToList();
        string dir = Fixtures.TempDir();
        var expected = cases.Select((c, i) =>
        {
            string path = Path.Combine(dir, $"{i}.png");
            File.WriteAllBytes(path, c.Png);
            return pipeline.Run([path], [c.Question is null ? "" : pipeline.VqaPrompt(c.Question)],
                new GenerationOptions { MaxNewTokens = 30 })[0].Text;
        }).ToList();
        var responses = await Task.WhenAll(cases.Select(c => client.GetResponseAsync([Ask(c.Png, c.Question)])));
        Assert.Equal(expected, responses.Select(r => r.Text));
        Assert.All(responses, r => Assert.Equal(ChatFinishReason.Stop, r.FinishReason));
        Assert.Equal(33, responses[0].Usage!.InputTokenCount);                  // BOS and 32 query tokens
    }

    [Fact]
    public async Task StreamingGivesTheSameTextAndBeamSettingsComeThroughAdditionalProperties()
    {
        using var client = Blip2ChatClient.FromPretrained(Path.Combine(Models, "generation"));
        var pipeline = (Blip2Pipeline)client.GetService(typeof(Blip2Pipeline))!;
        var png = Png(77);
        string path = Path.Combine(Fixtures.TempDir(), "s.png");
        File.WriteAllBytes(path, png);
        var whole = await client.GetResponseAsync([Ask(png, null)]);
        var pieces = new List<string>();
        UsageDetails? usage = null;
        await foreach (var u in client.GetStreamingResponseAsync([Ask(png, null)]))
        {
            if (u.Text.Length > 0) pieces.Add(u.Text);
            usage ??= u.Contents.OfType<UsageContent>().FirstOrDefault()?.Details;
        }
        Assert.True(pieces.Count > 3);
        Assert.Equal(whole.Text, string.Concat(pieces));
        Assert.Equal(whole.Usage!.OutputTokenCount, usage!.OutputTokenCount);

        // The paper's VQA preset through ChatOptions: beam 5, at most 10 new tokens, at least 1, length penalty -1.
        const string question = "what colour is the background?";
        var vqa = await client.GetResponseAsync([Ask(png, question)], new ChatOptions
        {
            MaxOutputTokens = 10,
            AdditionalProperties = new() { ["num_beams"] = 5, ["min_new_tokens"] = 1, ["length_penalty"] = -1.0 },
        });
        Assert.Equal(pipeline.Run([path], [pipeline.VqaPrompt(question)], GenerationOptions.Vqa)[0].Text, vqa.Text);
    }

    [Fact]
    public async Task EmbeddingGeneratorsGiveWhatBlip2EmbedGives()
    {
        string image = Path.Combine(Fixtures.TempDir(), "e.png");
        File.WriteAllBytes(image, Png(5));
        string output = Path.Combine(Fixtures.TempDir(), "e.json");
        var cli = CliRunner.Run("embed", "--image", image, "--text", "a red circle", "--out", output);
        Assert.True(cli.ExitCode == 0, cli.Stderr);
        var expected = JsonNode.Parse(File.ReadAllText(output))!;
        using var retriever = Blip2Retriever.FromPretrained(Path.Combine(Models, "retrieval"));
        IEmbeddingGenerator<string, Embedding<float>> texts = new Blip2TextEmbeddingGenerator(retriever);
        IEmbeddingGenerator<DataContent, Embedding<float>> images = new Blip2ImageEmbeddingGenerator(retriever);
        var t = (await texts.GenerateAsync(["a red circle"]))[0].Vector.ToArray();
        var want = expected["text_embeds"]![0]!.AsArray().Select(x => (float)x!).ToArray();
        Assert.Equal(want.Length, t.Length);
        for (int i = 0; i < t.Length; i++) Assert.Equal(want[i], t[i], 5);
        var v = (await images.GenerateAsync([new DataContent(await File.ReadAllBytesAsync(image),
            "image/png")]))[0].Vector.ToArray();
        var wantImage = expected["image_embeds"]![0]!.AsArray().SelectMany(r => r!.AsArray().Select(x => (float)x!))
            .ToArray();
        Assert.Equal(wantImage.Length, v.Length);
        for (int i = 0; i < v.Length; i++) Assert.Equal(wantImage[i], v[i], 5);
        Assert.Equal(wantImage.Length, images.GetService<EmbeddingGeneratorMetadata>()!.DefaultModelDimensions);
    }

    [Fact]
    public async Task ARequestWithoutAnImageIsRefused()
    {
        using var client = Blip2ChatClient.FromPretrained(Path.Combine(Models, "generation"));
        var e = await Assert.ThrowsAsync<InvalidSettingException>(()
            => client.GetResponseAsync([new ChatMessage(ChatRole.User, "hello")]));
        Assert.Contains("image", e.Message);
    }
}
