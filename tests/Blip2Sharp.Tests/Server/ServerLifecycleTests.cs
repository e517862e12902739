using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Blip2Sharp.Demo;
using Xunit;

namespace Blip2Sharp.Tests.Server;

/// <summary>Starting (503 until the models are loaded), stopping on SIGTERM (in-flight requests finish, exit
/// 0).</summary>
public class ServerLifecycleTests
{
    private static string Body(bool stream) => new JsonObject
    {
        ["model"] = "blip2-demo",
        ["stream"] = stream,
        ["messages"] = new JsonArray(new JsonObject
        {
            ["role"] = "user",
            ["content"] = new JsonArray(new JsonObject
            {
                ["type"] = "image_url",
                ["image_url"] = new JsonObject
                {
                    ["url"] = "data:image/png;base64," + Convert.ToBase64String(
                        new Scene("gray", [new SceneObject(Shape.Square, "orange", false, 2, 2)]).RenderPng(96)),
                },
            }),
        }),
    }.ToJsonString();

    [Fact]
    public async Task SigtermLetsInFlightRequestsFinishAndExitsZero()
    {
        // One sequence per step: the 12 requests are answered one after another, so most are still running (their
        // response begun, their tokens to come) when SIGTERM arrives.
        var server = new ServeProcess("--shutdown-timeout", "60", "--max-batch", "1");
        try
        {
            var http = server.Http;
            int started = 0;
            var allStarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var requests = Enumerable.Range(0, 12).Select(i => Task.Run(async () =>
            {
                using var message = new HttpRequestMessage(HttpMethod.Post,
                    "/v1/chat/completions") { Content = new StringContent(Body(true), Encoding.UTF8,
                    "application/json") };
                using var response = await http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead);
                // A request the server has begun to answer is in flight; one still on the wire when the server closes
                // its idle connections is not (the client may retry it), so the signal waits for every response.
                if (Interlocked.Increment(ref started) == 12) allStarted.TrySetResult();
                using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
                var events = new List<string>();
                string? line;
                while ((line = await reader.ReadLineAsync()) is not null)
                {
                    if (!line.StartsWith("data: ")) continue;
                    events.Add(line);
                }
                return (response.StatusCode, events);
            })).ToList();
            await allStarted.Task.WaitAsync(TimeSpan.FromSeconds(60));
            int doneAtSignal = requests.Count(t => t.IsCompleted);
            var clock = Stopwatch.StartNew();
            int exit = await Task.Run(() => server.Terminate(TimeSpan.FromSeconds(90)));
            Assert.Equal(0, exit);
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), $"exit took {clock.Elapsed}");
            foreach (var (status, events) in await Task.WhenAll(requests))
            {
                Assert.Equal(HttpStatusCode.OK, status);
                Assert.Equal("data: [DONE]", events[^1]);                        // every stream ran to its end
            }
            Assert.True(doneAtSignal < requests.Count, "every request had finished before SIGTERM");
            Assert.Contains("stopping", server.Stderr);
            await Assert.ThrowsAsync<HttpRequestException>(() => http.GetAsync("/health"));
        }
        finally
        {
            server.Dispose();
        }
    }

    [Fact]
    public async Task HealthAnswers503UntilTheModelsAreLoaded()
    {
        // The in-process host: /health is asked before the background load can have finished.
        var options = new Blip2Sharp.Server.ServerOptions
        {
            Model = Path.Combine(AppContext.BaseDirectory, "models", "blip2-demo", "generation"),
            Port = 0,
        };
        var models = new Blip2Sharp.Server.ServedModels(options, new Blip2Sharp.Server.ServerMetrics());
        Assert.False(models.Ready);
        var e = Assert.Throws<Blip2Sharp.Server.ApiException>(() => models.Pipeline);
        Assert.Equal(503, e.Status);
        models.StartLoading();
        await models.Loading.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(models.Ready);
        Assert.NotNull(models.Pipeline);
        models.Dispose();
    }
}
