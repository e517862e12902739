using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Blip2Sharp.Demo;
using Xunit;

namespace Blip2Sharp.Tests.Server;

/// <summary>`blip2 serve` on the demo model with a key and small limits: 1 MB bodies, one sequence per step, one
/// waiting request, max_tokens ≤ 40.</summary>
public sealed class StrictServer : IDisposable
{
    public const string Key = "test-key-123";

    public ServeProcess Server { get; } = new("--api-key", Key, "--max-body-mb", "1", "--max-batch", "1",
        "--max-queue", "1", "--max-tokens", "40");

    public void Dispose() => Server.Dispose();
}

/// <summary>Every bad input answered with its status and OpenAI's error shape, and a message that says what to
/// do.</summary>
public class ServerErrorTests(StrictServer strict) : IClassFixture<StrictServer>
{
    private HttpClient Http => strict.Server.Http;

    private static readonly string Png = "data:image/png;base64," + Convert.ToBase64String(
        new Scene("white", [new SceneObject(Shape.Circle, "red", true, 0, 1)]).RenderPng(96));

    private static JsonObject ImagePart(string url)
        => new() { ["type"] = "image_url", ["image_url"] = new JsonObject { ["url"] = url } };

    private static JsonObject TextPart(string text) => new() { ["type"] = "text", ["text"] = text };

    private static JsonObject Chat(params JsonNode[] parts) => new()
    {
        ["model"] = "blip2-demo",
        ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = new JsonArray(parts) }),
    };

    private async Task<(HttpResponseMessage Response, JsonNode Error)> Post(string path, string body,
        HttpClient? client = null)
    {
        var response = await (client ?? Http)
            .PostAsync(path, new StringContent(body, Encoding.UTF8, "application/json"));
        return (response, await ErrorOf(response));
    }

    /// <summary>{"error": {"message", "type", "param", "code"}}: all four keys, a message that is a sentence.</summary>
    private static async Task<JsonNode> ErrorOf(HttpResponseMessage response)
    {
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var error = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["error"]!;
        Assert.True(((string)error["message"]!).Length > 10);
        Assert.False(string.IsNullOrEmpty((string)error["type"]!));
        var keys = error.AsObject().Select(p => p.Key).ToHashSet();
        Assert.Superset(new HashSet<string> { "message", "type", "param", "code" }, keys);
        return error;
    }

    private async Task Refused(JsonNode body, HttpStatusCode status, string? code, string? param = null,
        string path = "/v1/chat/completions")
    {
        var (response, error) = await Post(path, body.ToJsonString());
        Assert.Equal(status, response.StatusCode);
        if (code is not null) Assert.Equal(code, (string?)error["code"]);
        if (param is not null) Assert.Equal(param, (string?)error["param"]);
    }

    /// <summary>A chat completion's headers (with the key) announcing contentLength bytes, then <paramref name="rest"/>.</summary>
    private async Task<TcpClient> RawPost(int contentLength, string rest)
    {
        var tcp = new TcpClient();
        await tcp.ConnectAsync(strict.Server.BaseAddress.Host, strict.Server.BaseAddress.Port);
        string head = $"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {StrictServer.Key}\r\n" +
            $"Content-Type: application/json\r\nContent-Length: {contentLength}\r\n" + rest;
        await tcp.GetStream().WriteAsync(Encoding.ASCII.GetBytes(head));
        return tcp;
    }

    [Fact]
    public async Task ABodyOverTheLimitIs413()
    {
        // Headers that announce 1.5 MB and no body: the server refuses on the size alone, before reading any of it
        // (a client still writing a body the server has refused may see the connection close under it).
        using var tcp = await RawPost(1_500_000, "Connection: close\r\n\r\n");
        using var reader = new StreamReader(tcp.GetStream(), Encoding.UTF8);
        string answer = await reader.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.StartsWith("HTTP/1.1 413", answer);
        string body = answer[(answer.IndexOf("\r\n\r\n") + 4)..];                  // chunked: the JSON between its braces
        var error = JsonNode.Parse(body[body.IndexOf('{')..(body.LastIndexOf('}') + 1)])!["error"]!;
        Assert.Contains("1 MB", (string)error["message"]!);
        Assert.Equal("request_too_large", (string?)error["code"]);
    }

    [Fact]
    public Task TwoImagesAre400()
        => Refused(Chat(ImagePart(Png), ImagePart(Png)), HttpStatusCode.BadRequest, "too_many_images",
        "messages[0].content[1]");

    [Fact]
    public Task InvalidBase64Is400()
        => Refused(Chat(ImagePart("data:image/png;base64,@@not base64@@")), HttpStatusCode.BadRequest,
        "invalid_image_url", "messages[0].content[0].image_url");

    [Fact]
    public Task ACorruptImageIs400() => Refused(Chat(ImagePart("data:image/png;base64," +
        Convert.ToBase64String([0x89, (byte)'P', (byte)'N', (byte)'G', 1, 2, 3, 4, 5, 6, 7, 8]))),
            HttpStatusCode.BadRequest, "invalid_image");

    [Fact]
    public async Task ADecompressionBombIs400()
    {
        var (response, error) = await Post("/v1/chat/completions",
            Chat(ImagePart("data:image/png;base64," + Convert.ToBase64String(BadImageTests.PngClaiming(20000, 20000))))
                .ToJsonString());
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("invalid_image", (string?)error["code"]);
        Assert.Contains("decompression bomb", (string)error["message"]!);
    }

    [Fact]
    public async Task AnUnknownModelIs404()
    {
        var body = Chat(ImagePart(Png));
        body["model"] = "gpt-4o";
        await Refused(body, HttpStatusCode.NotFound, "model_not_found", "model");
    }

    [Fact]
    public Task APromptLongerThanTheContextIs400() =>
        Refused(Chat(ImagePart(Png),
            TextPart(string.Join(" ", Enumerable.Repeat("what colour is the large circle", 30)))),
            HttpStatusCode.BadRequest, "context_length_exceeded", "messages");

    [Fact]
    public async Task MaxTokensAboveTheCapIs400()
    {
        var body = Chat(ImagePart(Png));
        body["max_tokens"] = 41;
        await Refused(body, HttpStatusCode.BadRequest, "max_tokens_too_large", "max_tokens");
    }

    [Fact]
    public async Task MalformedJsonIs400()
    {
        var (response, error) = await Post("/v1/chat/completions", "{\"model\": \"blip2-demo\", \"messages\": [");
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("invalid_json", (string?)error["code"]);
    }

    [Fact]
    public Task ADataUrlPastedInATextPartIs400() =>
        Refused(Chat(ImagePart(Png), TextPart("what is this? " + Png[..60])), HttpStatusCode.BadRequest,
            "image_in_text", "messages[0].content[1].text");

    [Fact]
    public Task AnHttpImageUrlIs400WithoutTheOptIn() =>
        Refused(Chat(ImagePart("https://example.com/cat.png")), HttpStatusCode.BadRequest, "image_url_not_allowed");

    [Fact]
    public Task NoImageIs400()
        => Refused(Chat(TextPart("what is this?")), HttpStatusCode.BadRequest, "image_required", "messages");

    [Fact]
    public async Task BadSettingsAre400AndNameTheParameter()
    {
        var body = Chat(ImagePart(Png));
        body["temperature"] = 3;
        await Refused(body, HttpStatusCode.BadRequest, null, "temperature");
        body = Chat(ImagePart(Png));
        body["n"] = 2;
        await Refused(body, HttpStatusCode.BadRequest, null, "n");
    }

    [Fact]
    public async Task AFullQueueIs429WithRetryAfter()
    {
        // One sequence per step and one waiting request: of 12 at once, most are refused.
        var body = Chat(ImagePart(Png));
        body["max_tokens"] = 40;
        var responses = await Task.WhenAll(Enumerable.Range(0, 12).Select(_ =>
            Http.PostAsync("/v1/chat/completions",
                new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"))));
        var refused = responses.Where(r => r.StatusCode == HttpStatusCode.TooManyRequests).ToList();
        Assert.NotEmpty(refused);
        Assert.All(responses, r
            => Assert.Contains(r.StatusCode, new[] { HttpStatusCode.OK, HttpStatusCode.TooManyRequests }));
        Assert.Equal(TimeSpan.FromSeconds(1), refused[0].Headers.RetryAfter!.Delta);
        Assert.Equal("queue_full", (string?)(await ErrorOf(refused[0]))["code"]);
    }

    [Fact]
    public async Task EveryRouteButHealthNeedsTheKey()
    {
        using var anonymous = new HttpClient { BaseAddress = strict.Server.BaseAddress };
        using var wrong = new HttpClient { BaseAddress = strict.Server.BaseAddress };
        wrong.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer",
            "nope");
        foreach (var client in new[] { anonymous, wrong })
        {
            foreach (var path in new[] { "/v1/models", "/metrics", "/openapi.json", "/v1/images/x.png" })
            {
                var r = await client.GetAsync(path);
                Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
                Assert.Equal("invalid_api_key", (string?)(await ErrorOf(r))["code"]);
            }
            foreach (var path in new[] { "/v1/chat/completions", "/v1/embeddings", "/v1/match", "/v1/search",
                "/v1/index" })
            {
                var (r, error) = await Post(path, Chat(ImagePart(Png)).ToJsonString(), client);
                Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
                Assert.Equal("invalid_api_key", (string?)error["code"]);
            }
            Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/health")).StatusCode);
        }
        Assert.Equal(HttpStatusCode.OK, (await Http.GetAsync("/v1/models")).StatusCode);
    }

    [Fact]
    public async Task AnUnknownRouteIs404InTheErrorShape()
    {
        var r = await Http.GetAsync("/v1/nothing");
        Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
        Assert.Equal("not_found", (string?)(await ErrorOf(r))["code"]);
    }

    [Fact]
    public async Task AStalledUploadIsCutOff()
    {
        // Headers promise 100 kB, then nothing comes: Kestrel's minimum data rate (240 B/s after a 5 s grace) ends it.
        using var tcp = await RawPost(100_000, "\r\n{\"model\":");
        var stream = tcp.GetStream();
        var buffer = new byte[4096];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var started = System.Diagnostics.Stopwatch.StartNew();
        int read;
        var answer = new StringBuilder();
        try
        {
            while ((read = await stream.ReadAsync(buffer,
                cts.Token)) > 0) answer.Append(Encoding.ASCII.GetString(buffer, 0, read));
        }
        catch (IOException)
        {
            // A reset connection is also a cut-off.
        }
        Assert.False(cts.IsCancellationRequested, "the server held the stalled connection for 30 s");
        Assert.InRange(started.Elapsed.TotalSeconds, 3, 29);
        if (answer.Length > 0) Assert.StartsWith("HTTP/1.1 408", answer.ToString());
    }
}
