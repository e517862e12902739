using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Blip2Sharp.Demo;
using Blip2Sharp.Generation;
using Blip2Sharp.Tasks;
using Xunit;
using Xunit.Abstractions;

namespace Blip2Sharp.Tests.Server;

/// <summary>
/// 16 clients × 8 requests at once against `blip2 serve` on the demo model: mixed images and prompts, greedy, beam and
/// seeded sampling, some streamed, some abandoned midway. Every completed answer equals its one-at-a-time answer
/// (the pipeline alone, the path of `blip2 caption` / `blip2 ask`), nothing fails, the memory stays bounded, and
/// /metrics counts the requests.
/// </summary>
public class ServerLoadTests(DemoServer demo, ITestOutputHelper output) : IClassFixture<DemoServer>
{
    /// <summary>The server's resident memory stays under this during the run (the demo model: ~300 MB when
    /// idle).</summary>
    private const long RssBound = 1L << 30;

    private static readonly string[] Questions = ["what colour is the circle?", "how many shapes are there?",
        "what shape is on the left?"];

    private sealed record Request(int Index, string Image, string? Question, GenerationOptions Options,
        JsonObject Body, bool Stream, bool Abandon);

    private static Request Make(int k, string[] images)
    {
        string image = images[k % images.Length];
        string? question = k % 4 == 0 ? null : Questions[k % Questions.Length];
        var body = new JsonObject { ["model"] = "blip2-demo" };
        GenerationOptions o;
        switch (k % 4)
        {
            case 0 or 1:                                         // greedy caption / answer
                o = new GenerationOptions { MaxNewTokens = 30 };
                break;
            case 2:                                              // beam search, the VQA preset's shape
                o = new GenerationOptions { NumBeams = 3, MaxNewTokens = 10, MinNewTokens = 1, LengthPenalty = -1 };
                body["num_beams"] = 3;
                body["max_tokens"] = 10;
                body["min_new_tokens"] = 1;
                body["length_penalty"] = -1;
                break;
            default:                                             // seeded sampling
                o = new GenerationOptions { DoSample = true, Temperature = 0.8, TopP = 0.9, Seed = (ulong)k,
                    MaxNewTokens = 30 };
                body["temperature"] = 0.8;
                body["top_p"] = 0.9;
                body["seed"] = k;
                break;
        }
        var content = new JsonArray(new JsonObject
        {
            ["type"] = "image_url",
            ["image_url"] = new JsonObject { ["url"] = "data:image/png;base64,"
                + Convert.ToBase64String(File.ReadAllBytes(image)) },
        });
        if (question is not null) content.Add(new JsonObject { ["type"] = "text", ["text"] = question });
        body["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = content });
        bool stream = k % 4 != 2 && k % 3 == 0;
        body["stream"] = stream;
        return new Request(k, image, question, o, body, stream, Abandon: stream && k % 5 == 0);
    }

    [Fact]
    public async Task SixteenClientsGetTheirOneAtATimeAnswers()
    {
        string dir = Fixtures.TempDir();
        var images = Enumerable.Range(0, 8).Select(i =>
        {
            string path = Path.Combine(dir, $"scene{i}.png");
            File.WriteAllBytes(path, Scene.Random(new Random(1000 + i)).RenderPng(96));
            return path;
        }).ToArray();
        var requests = Enumerable.Range(0, 16 * 8).Select(k => Make(k, images)).ToList();

        // One at a time, in this process: the library's pipeline on each request alone.
        var expected = new Dictionary<int, string>();
        using (var pipeline = Blip2Pipeline.FromPretrained(Path.Combine(AppContext.BaseDirectory, "models",
            "blip2-demo", "generation")))
        {
            foreach (var r in requests.Where(r => !r.Abandon))
            {
                string prompt = r.Question is null ? "" : pipeline.VqaPrompt(r.Question);
                expected[r.Index] = pipeline.Run([r.Image], [prompt], r.Options)[0].Text;
            }
        }

        long peakRss = demo.Server.ResidentBytes();
        using var sampling = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!sampling.IsCancellationRequested)
            {
                peakRss = Math.Max(peakRss, demo.Server.ResidentBytes());
                await Task.Delay(50);
            }
        });
        string metricsBefore = await demo.Server.Http.GetStringAsync("/metrics");
        var answers = new System.Collections.Concurrent.ConcurrentDictionary<int,
            (HttpStatusCode Status, string Text)>();
        var clients = Enumerable.Range(0, 16).Select(c => Task.Run(async () =>
        {
            foreach (var r in requests.Where(r => r.Index % 16 == c)) answers[r.Index] = await Send(r);
        })).ToList();
        await Task.WhenAll(clients);
        sampling.Cancel();
        await sampler;

        Assert.Equal(requests.Count, answers.Count);
        Assert.All(answers.Values, a => Assert.Equal(HttpStatusCode.OK, a.Status));
        int compared = 0;
        foreach (var r in requests.Where(r => !r.Abandon))
        {
            Assert.True(expected[r.Index] == answers[r.Index].Text,
                $"request {r.Index}: '{answers[r.Index].Text}' alone: '{expected[r.Index]}'");
            compared++;
        }
        output.WriteLine($"{compared} answers compared, {requests.Count - compared} abandoned midway; peak RSS {peakRss / (1 << 20)} MB");
        Assert.True(peakRss < RssBound, $"peak RSS {peakRss / (1 << 20)} MB");

        double Count(string text, string status) =>
            Regex.Matches(text,
                $@"^blip2_requests_total\{{[^}}]*route=""/v1/chat/completions"",status=""{status}""\}} (\d+)",
                RegexOptions.Multiline)
                .Sum(m => double.Parse(m.Groups[1].Value));
        // An abandoned request is counted when the server notices the client left (at its next step): wait for that.
        string metricsAfter = await demo.Server.Http.GetStringAsync("/metrics");
        for (int i = 0; i < 100 && Count(metricsAfter, "200") - Count(metricsBefore, "200") < requests.Count; i++)
        {
            await Task.Delay(100);
            metricsAfter = await demo.Server.Http.GetStringAsync("/metrics");
        }
        Assert.Equal(requests.Count, Count(metricsAfter, "200") - Count(metricsBefore, "200"));
        // Batching happened: some steps decoded more than one sequence.
        double Rows(string text, string bucket) =>
            Regex.Match(text, $@"^blip2_batch_rows_bucket\{{[^}}]*le=""{Regex.Escape(bucket)}""\}} (\d+)",
                RegexOptions.Multiline) is { Success: true } m
                ? double.Parse(m.Groups[1].Value) : 0;                          // no step yet: no histogram
        double steps = Rows(metricsAfter, "+Inf") - Rows(metricsBefore, "+Inf");
        double single = Rows(metricsAfter, "1") - Rows(metricsBefore, "1");
        Assert.True(steps > single, $"{steps} steps, {single} with one sequence");
        output.WriteLine($"{steps} decoding steps, {steps - single} with more than one sequence");
    }

    private async Task<(HttpStatusCode, string)> Send(Request r)
    {
        using var message = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = new StringContent(r.Body.ToJsonString(), Encoding.UTF8, "application/json"),
        };
        using var response = await demo.Server.Http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead);
        if (!r.Stream)
        {
            string json = await response.Content.ReadAsStringAsync();
            return (response.StatusCode, response.IsSuccessStatusCode
                ? (string)JsonNode.Parse(json)!["choices"]![0]!["message"]!["content"]! : json);
        }
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var text = new StringBuilder();
        string? line;
        while ((line = await reader.ReadLineAsync()) is not null)
        {
            if (!line.StartsWith("data: ")) continue;
            if (line == "data: [DONE]") break;
            var chunk = JsonNode.Parse(line[6..])!;
            Assert.Null(chunk["error"]);
            foreach (var choice in chunk["choices"]!.AsArray())
                if (choice!["delta"]?["content"] is { } piece && (string)piece! is { Length: > 0 } s)
                {
                    text.Append(s);
                    if (r.Abandon) return (response.StatusCode,
                        text.ToString());     // leave midway: the response is disposed
                }
        }
        return (response.StatusCode, text.ToString());
    }
}
