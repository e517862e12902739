using System.Diagnostics;
using System.Text.Json;
using Blip2Sharp.Generation;
using Blip2Sharp.Tasks;
using static TorchSharp.torch;

namespace Blip2Sharp.Server;

/// <summary>
/// POST /v1/chat/completions: the request becomes a prompt as `blip2 caption` (an image alone), `blip2 ask` (one
/// question) or `blip2 chat` (earlier turns in front) builds it, and a job of the continuous batcher; the answer comes
/// back whole or streamed as server-sent events (one chunk per piece of text, a final chunk with finish_reason, a usage
/// chunk with "choices": [] when stream_options.include_usage, then data: [DONE]).
/// </summary>
public static class ChatCompletions
{
    public static async Task Handle(HttpContext http, ServedModels models, ImageInput images, ServerMetrics metrics)
    {
        var started = Stopwatch.GetTimestamp();
        var aborted = http.RequestAborted;
        var request = await Wire.ReadAsync<ChatCompletionRequest>(http.Request, aborted);
        var pipeline = models.Pipeline;
        string modelId = models.Options.GenerationId;
        models.RequireModel(request.Model, modelId);
        var conversation = Conversation.Parse(request.Messages);
        var options = Settings(request, models.Options);
        var stops = Stops(request.Stop);
        string prompt = PromptFor(pipeline, conversation, options);
        var image = await images.DecodeAsync(conversation.ImageUrl, conversation.ImageParam, aborted);

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(aborted);
        timeout.CancelAfter(models.Options.RequestTimeout);
        ChatGeneration generation;
        try
        {
            generation = ChatGeneration.Start(pipeline, models.Batcher, image, prompt, options, stops, timeout.Token);
        }
        catch (QueueFullException e)
        {
            http.Response.Headers.RetryAfter = "1";
            throw new ApiException(429, $"the server is busy: {e.Message} Retry after a second.",
                "rate_limit_exceeded", code: "queue_full");
        }

        string id = $"chatcmpl-{Guid.NewGuid():N}";
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var sse = request.Stream == true ? new EventStream(http.Response) : null;
        if (sse is not null)
        {
            await sse.StartAsync(aborted);
            for (int i = 0; i < options.NumReturnSequences; i++)
                await sse.SendAsync(new ChatCompletionChunk(id, "chat.completion.chunk", created, modelId,
                    [new ChunkChoice(i, new Delta(Role: "assistant", Content: ""), null)]), aborted);
        }
        try
        {
            await foreach (var piece in generation.StreamAsync(CancellationToken.None))
                if (sse is not null) await sse.SendAsync(Chunk(id, created, modelId, piece.Sequence, piece.Text),
                    aborted);
        }
        catch (OperationCanceledException) when (aborted.IsCancellationRequested)
        {
            return;                                          // the client left; its slot is freed at the next step
        }
        catch (Exception e) when (e is not ApiException)
        {
            var error = timeout.IsCancellationRequested
                ? new ApiException(504, $"the generation took longer than the server's request timeout " +
                    $"({models.Options.RequestTimeout.TotalSeconds:0} s); ask for fewer max_tokens.", "timeout",
                        code: "timeout")
                : new ApiException(500, $"generation failed: {e.Message}", "server_error");
            if (sse is null) throw error;
            await sse.SendAsync(error.Body, CancellationToken.None);
            return;
        }

        var answers = generation.Answers;
        int completionTokens = answers.Sum(a => a.CompletionTokens);
        var usage = new Usage(generation.PromptTokens, completionTokens, generation.PromptTokens + completionTokens);
        metrics.Generation(generation.PromptTokens, completionTokens, generation.TimeToFirstToken,
            Stopwatch.GetElapsedTime(started));
        if (sse is null)
        {
            var choices = answers.Select((a, i)
                => new ChatChoice(i, new AssistantMessage("assistant", a.Text), a.FinishReason)).ToList();
            await http.Response.WriteAsJsonAsync(new ChatCompletion(id, "chat.completion", created, modelId, choices,
                usage), Wire.Json, aborted);
            return;
        }
        for (int i = 0; i < answers.Count; i++)
            await sse.SendAsync(new ChatCompletionChunk(id, "chat.completion.chunk", created, modelId,
                [new ChunkChoice(i, new Delta(), answers[i].FinishReason)]), aborted);
        if (request.StreamOptions?.IncludeUsage == true)
            await sse.SendAsync(new ChatCompletionChunk(id, "chat.completion.chunk", created, modelId, [], usage),
                aborted);
        await sse.DoneAsync(aborted);
    }

    private static ChatCompletionChunk Chunk(string id, long created, string model, int index, string text) =>
        new(id, "chat.completion.chunk", created, model, [new ChunkChoice(index, new Delta(Content: text), null)]);

    private static string PromptFor(Blip2Pipeline pipeline, Conversation c, GenerationOptions options)
    {
        try
        {
            return ChatPrompt.For(pipeline, c.Turns, c.Question, options);
        }
        catch (ArgumentException e)
        {
            throw ApiException.BadRequest(e.Message, "messages", "context_length_exceeded");
        }
    }

    /// <summary>The request's decoding settings, checked; every refusal names its parameter.</summary>
    public static GenerationOptions Settings(ChatCompletionRequest r, ServerOptions server) => new ChatSettings
    {
        MaxTokens = r.MaxCompletionTokens ?? r.MaxTokens,
        MaxTokensName = r.MaxCompletionTokens is not null ? "max_completion_tokens" : "max_tokens",
        Temperature = r.Temperature,
        TopP = r.TopP,
        TopK = r.TopK,
        Seed = r.Seed,
        N = r.N,
        NumBeams = r.NumBeams,
        LengthPenalty = r.LengthPenalty,
        RepetitionPenalty = r.RepetitionPenalty,
        NoRepeatNgramSize = r.NoRepeatNgramSize,
        MinNewTokens = r.MinNewTokens,
    }.ToOptions(server.MaxTokensCap, server.MaxBatch);

    /// <summary>stop: a string or a list of up to four strings.</summary>
    public static List<string> Stops(JsonElement? stop)
    {
        if (stop is not { } s || s.ValueKind == JsonValueKind.Null) return [];
        if (s.ValueKind == JsonValueKind.String) return [s.GetString()!];
        if (s.ValueKind == JsonValueKind.Array && s.GetArrayLength() <= 4 && s.EnumerateArray()
            .All(x => x.ValueKind == JsonValueKind.String))
            return [.. s.EnumerateArray().Select(x => x.GetString()!)];
        throw ApiException.BadRequest("stop must be a string or a list of up to 4 strings.", "stop");
    }
}

/// <summary>Server-sent events: data: {json} per event, flushed at once; data: [DONE] at the end.</summary>
public sealed class EventStream(HttpResponse response)
{
    public async Task StartAsync(CancellationToken ct)
    {
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        await response.Body.FlushAsync(ct);
    }

    public async Task SendAsync<T>(T payload, CancellationToken ct)
    {
        await response.WriteAsync($"data: {JsonSerializer.Serialize(payload, Wire.Json)}\n\n", ct);
        await response.Body.FlushAsync(ct);
    }

    public async Task DoneAsync(CancellationToken ct)
    {
        await response.WriteAsync("data: [DONE]\n\n", ct);
        await response.Body.FlushAsync(ct);
    }
}
