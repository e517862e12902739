using System.Net;
using System.Security.Cryptography;
using System.Text;
using Blip2Sharp.Processing;
using Microsoft.AspNetCore.Hosting;
using MinDataRate = Microsoft.AspNetCore.Server.Kestrel.Core.MinDataRate;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using OpenTelemetry.Metrics;

namespace Blip2Sharp.Server;

/// <summary>
/// `blip2 serve`: an OpenAI-compatible HTTP server over the library (ASP.NET Core minimal APIs on Kestrel). The
/// models load in the background after the port opens (GET /health: 503, then 200); requests then go through the
/// continuous batcher (chat) or one at a time (retrieval). SIGTERM or Ctrl-C stops accepting, lets in-flight requests
/// finish within <see cref="ServerOptions.ShutdownTimeout"/>, cancels the rest, and the process exits 0.
/// </summary>
public static class Blip2Server
{
    public static WebApplication Build(ServerOptions o)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(c => c.SingleLine = true);
        builder.Logging.AddFilter((category, level) => level >= LogLevel.Warning);
        builder.Services.Configure<Microsoft.Extensions.Logging.Console.ConsoleLoggerOptions>(c
            => c.LogToStandardErrorThreshold = LogLevel.Trace);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Limits.MaxRequestBodySize = o.MaxBodyMb * 1024L * 1024L;
            // A slow or stuck client cannot hold a connection forever: headers within 30 s, bodies and responses
            // moving at 240 bytes/s or more after a 5 s grace (Kestrel's rate limits), idle connections closed.
            k.Limits.RequestHeadersTimeout = TimeSpan.FromSeconds(30);
            k.Limits.KeepAliveTimeout = TimeSpan.FromMinutes(2);
            k.Limits.MinRequestBodyDataRate = new MinDataRate(240, TimeSpan.FromSeconds(5));
            k.Limits.MinResponseDataRate = new MinDataRate(240, TimeSpan.FromSeconds(5));
            if (o.Host == "localhost") k.ListenLocalhost(o.Port);
            else if (IPAddress.TryParse(o.Host, out var ip)) k.Listen(ip, o.Port);
            else throw new ArgumentException($"--host {o.Host}: give an IP address (127.0.0.1, 0.0.0.0, ::1) or localhost.");
        });
        builder.Services.Configure<HostOptions>(h => h.ShutdownTimeout = o.ShutdownTimeout);
        builder.Services.ConfigureHttpJsonOptions(j =>
        {
            j.SerializerOptions.PropertyNamingPolicy = Wire.Json.PropertyNamingPolicy;
            j.SerializerOptions.DefaultIgnoreCondition = Wire.Json.DefaultIgnoreCondition;
            j.SerializerOptions.Encoder = Wire.Json.Encoder;
        });
        builder.Services.AddSingleton(o);
        builder.Services.AddSingleton<ServerMetrics>();
        builder.Services.AddSingleton<ServedModels>();
        builder.Services.AddHttpClient("images", c => c.Timeout = TimeSpan.FromSeconds(20));
        builder.Services.AddSingleton(sp
            => new ImageInput(o, ImageDecodeOptions.Default, sp.GetRequiredService<IHttpClientFactory>()));
        builder.Services.AddOpenApi();
        builder.Services.AddOpenTelemetry()
            .WithMetrics(m => m.AddMeter(ServerMetrics.MeterName).AddPrometheusExporter());

        var app = builder.Build();
        var models = app.Services.GetRequiredService<ServedModels>();
        var metrics = app.Services.GetRequiredService<ServerMetrics>();
        app.Lifetime.ApplicationStarted.Register(() =>
        {
            models.StartLoading();
            var addresses = app.Services.GetRequiredService<IServer>()
                .Features.Get<IServerAddressesFeature>()?.Addresses;
            o.Log?.Invoke($"listening on {string.Join(", ", addresses ?? [])} (model {o.GenerationId}" +
                (o.RetrievalId is { } r ? $", retrieval {r}" : "") + (o.Db is { } db ? $", index {db}" : "")
                    + "); loading the models");
            models.Loading.ContinueWith(t
                => o.Log?.Invoke(t.IsCompletedSuccessfully ? "ready"
                : $"error: the model failed to load: {models.LoadError}"),
                TaskScheduler.Default);
        });
        app.Lifetime.ApplicationStopping.Register(()
            => o.Log?.Invoke("stopping: no new requests; finishing the ones in flight"));
        app.Lifetime.ApplicationStopped.Register(models.Dispose);

        app.Use(async (ctx, next) =>
        {
            await next(ctx);
            string route = (ctx.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText ?? "unmatched";
            metrics.Request(route, ctx.Response.StatusCode);
        });
        app.Use(Errors);
        app.Use(async (ctx, next) =>
        {
            if (o.ApiKey is { } key && ctx.Request.Path != "/health" && ctx.Request.Path != "/") CheckKey(ctx.Request,
                key);
            await next(ctx);
        });
        app.UseStatusCodePages(async ctx =>
        {
            var r = ctx.HttpContext.Response;
            var e = r.StatusCode switch
            {
                404 => new ApiException(404,
                    $"no route {ctx.HttpContext.Request.Method} {ctx.HttpContext.Request.Path}: GET /openapi.json lists them.", code: "not_found"),
                405 => new ApiException(405,
                    $"{ctx.HttpContext.Request.Method} is not allowed on {ctx.HttpContext.Request.Path}.",
                    code: "method_not_allowed"),
                var s => new ApiException(s, $"HTTP {s}."),
            };
            await e.WriteAsync(r);
        });
        Routes(app, o);
        return app;
    }

    private static void Routes(WebApplication app, ServerOptions o)
    {
        app.MapGet("/", () => Results.Content(Page.Value, "text/html; charset=utf-8")).ExcludeFromDescription();
        app.MapGet("/health", (ServedModels m) => m.LoadError is { } e
                ? Results.Json(new { status = "failed", error = e }, statusCode: 503)
                : m.Ready ? Results.Json(new { status = "ok" })
                    : Results.Json(new { status = "loading" }, statusCode: 503))
            .WithSummary("200 when the models are loaded, 503 while loading (or if loading failed); needs no key.");
        app.MapGet("/v1/models", (ServedModels m) => Models(m.Options))
            .WithSummary("The served models and their modalities.");
        app.MapPost("/v1/chat/completions", ChatCompletions.Handle)
            .Accepts<ChatCompletionRequest>("application/json")
            .Produces<ChatCompletion>(200).Produces<ChatCompletionChunk>(200, "text/event-stream")
            .Produces<ApiException.ErrorBody>(400).Produces<ApiException.ErrorBody>(404)
                .Produces<ApiException.ErrorBody>(413)
            .Produces<ApiException.ErrorBody>(429).Produces<ApiException.ErrorBody>(503)
            .WithSummary("OpenAI chat completions with one image_url part: caption (image alone), VQA, chat; streaming with SSE.");
        app.MapPost("/v1/embeddings", RetrievalRoutes.Embeddings).Accepts<EmbeddingsRequest>("application/json")
            .Produces<ApiException.ErrorBody>(400)
                .WithSummary("Q-Former text embeddings (256-d) and image query embeddings (Q × 256).");
        app.MapPost("/v1/match", RetrievalRoutes.Match).Accepts<MatchRequest>("application/json")
            .Produces<ApiException.ErrorBody>(400)
                .WithSummary("ITM match probability and ITC similarity of one image with each text.");
        app.MapPost("/v1/search", RetrievalRoutes.Search).Accepts<SearchRequest>("application/json")
            .Produces<ApiException.ErrorBody>(400)
                .WithSummary("Search the index (--db) by text (ITC, then ITM re-rank) or by image.");
        app.MapPost("/v1/index", RetrievalRoutes.Index).Accepts<IndexRequest>("application/json")
            .Produces<ApiException.ErrorBody>(400)
                .WithSummary("Add uploaded images to the index; durable when the call returns.");
        app.MapGet("/v1/images/{**id}", RetrievalRoutes.Image)
            .WithSummary("An indexed image's file, by the id search returns.");
        app.MapPrometheusScrapingEndpoint("/metrics");
        app.MapOpenApi("/openapi.json");
    }

    private static ModelList Models(ServerOptions o)
    {
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var list = new List<ModelCard>
        {
            new(o.GenerationId, "model", created, "blip2sharp", ["text", "image"], ["text"], ["/v1/chat/completions"]),
        };
        if (o.RetrievalId is { } r)
            list.Add(new(r, "model", created, "blip2sharp", ["text", "image"], ["embedding"],
                ["/v1/embeddings", "/v1/match", "/v1/search", "/v1/index"]));
        return new ModelList("list", list);
    }

    private static void CheckKey(HttpRequest request, string key)
    {
        string? header = request.Headers.Authorization;
        if (header is null || !header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
            throw new ApiException(401, "missing API key: send the header Authorization: Bearer KEY.",
                code: "invalid_api_key");
        if (!CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(header[7..].Trim()),
            Encoding.UTF8.GetBytes(key)))
            throw new ApiException(401, "wrong API key: send the key the server was started with (--api-key).",
                code: "invalid_api_key");
    }

    /// <summary>Every failure in OpenAI's error shape with its status, unless the response has already begun.</summary>
    private static async Task Errors(HttpContext ctx, RequestDelegate next)
    {
        try
        {
            await next(ctx);
        }
        catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested)
        {
            // The client went away: nothing to answer.
        }
        catch (Exception e) when (!ctx.Response.HasStarted)
        {
            var o = ctx.RequestServices.GetRequiredService<ServerOptions>();
            var api = e switch
            {
                ApiException a => a,
                Tasks.InvalidSettingException i
                    => ApiException.BadRequest(i.Message, i.Param.Length > 0 ? i.Param : null,
                    i.Message.Contains("above this server's cap") ? "max_tokens_too_large" : null),
                Microsoft.AspNetCore.Http.BadHttpRequestException { StatusCode: 413 } => new ApiException(413,
                    $"the request body is larger than this server's limit of {o.MaxBodyMb} MB (--max-body-mb); send a smaller image.",
                    code: "request_too_large"),
                Microsoft.AspNetCore.Http.BadHttpRequestException b
                    => new ApiException(b.StatusCode, $"bad request: {b.Message}"),
                _ => new ApiException(500, $"internal error ({e.GetType().Name}: {e.Message}); please report it.",
                    "server_error"),
            };
            await api.WriteAsync(ctx.Response);
        }
    }

    private static readonly Lazy<string> Page = new(() =>
    {
        using var s = typeof(Blip2Server).Assembly.GetManifestResourceStream("Blip2Sharp.Server.wwwroot.index.html")!;
        return new StreamReader(s).ReadToEnd();
    });

    /// <summary>Runs until SIGTERM / Ctrl-C (or <paramref name="ct"/>); returns the exit code.</summary>
    public static async Task<int> RunAsync(ServerOptions o, CancellationToken ct = default)
    {
        await using var app = Build(o);
        await app.StartAsync(ct);
        await app.WaitForShutdownAsync(ct);
        return 0;
    }
}
