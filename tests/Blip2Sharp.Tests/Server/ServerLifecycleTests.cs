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
        var server = new ServeProcess("--shutdown-timeout", "20");
        try
        {
            var http = server.Http;
            var first = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var requests = Enumerable.Range(0, 24).Select(i => Task.Run(async () =>
            {
                using var message = new HttpRequestMessage(HttpMethod.Post,
                    "/v1/chat/completions") { Content = new StringContent(Body(true), Encoding.UTF8,
                    "application/json") };
                using var response = await http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead);
                using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
                var events = new List<string>();
                string? line;
                while ((line = await reader.ReadLineAsync()) is not null)
                {
                    if (!line.StartsWith("data: ")) continue;
                    events.Add(line);
                    first.TrySetResult();
                }
                return (response.StatusCode, events);
            })).ToList();
            await first.Task.WaitAsync(TimeSpan.FromSeconds(60));
            int doneAtSignal = requests.Count(t => t.IsCompleted);
            var clock = Stopwatch.StartNew();
            int exit = await Task.Run(() => server.Terminate(TimeSpan.FromSeconds(60)));
            Assert.Equal(0, exit);
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(25), $"exit took {clock.Elapsed}");
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
