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
    /// <summary>max_tokens when the request gives none: the default of `blip2 caption` and `blip2 chat`.</summary>
    public const int DefaultMaxTokens = 30;

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
        string prompt = conversation.IsCaption ? "" : PromptFor(pipeline, conversation, options);
        if (pipeline.ContextProblem(prompt, options) is { } problem)
            throw ApiException.BadRequest(problem, "messages", "context_length_exceeded");
        var image = await images.DecodeAsync(conversation.ImageUrl, conversation.ImageParam, aborted);

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(aborted);
        timeout.CancelAfter(models.Options.RequestTimeout);
        using var finishedEarly = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token);
        GenerationJob job;
        int promptTokens;
        using (var scope = NewDisposeScope())
        {
            var pixels = pipeline.Processor.ImageProcessor.Preprocess([image]);
            var (ids, mask) = pipeline.Processor.EncodePrompts([prompt], padLeft: pipeline.IsDecoderOnly);
            var config = pipeline.Model.Config;
            promptTokens = (int)ids.shape[1] + (config.ImageTokenIndex is null ? config.NumQueryTokens : 0);
            try
            {
                job = models.Batcher.Submit(pixels, ids, mask, options, finishedEarly.Token);
            }
            catch (QueueFullException e)
            {
                http.Response.Headers.RetryAfter = "1";
                throw new ApiException(429, $"the server is busy: {e.Message} Retry after a second.", "rate_limit_exceeded", code: "queue_full");
            }
        }

        string id = $"chatcmpl-{Guid.NewGuid():N}";
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        bool stream = request.Stream == true;
        var texts = Enumerable.Range(0, options.NumReturnSequences).Select(_ => new TextStream(pipeline, stops)).ToArray();
        var sse = stream ? new EventStream(http.Response) : null;
        if (sse is not null)
        {
            await sse.StartAsync(aborted);
            for (int i = 0; i < texts.Length; i++)
                await sse.SendAsync(new ChatCompletionChunk(id, "chat.completion.chunk", created, modelId,
                    [new ChunkChoice(i, new Delta(Role: "assistant", Content: ""), null)]), aborted);
        }

        List<GeneratedSequence>? result = null;
        try
        {
            await foreach (var t in job.Tokens.ReadAllAsync(CancellationToken.None))
            {
                string piece = texts[t.Sequence].Push(t.Token);
                if (sse is not null && piece.Length > 0)
                    await sse.SendAsync(Chunk(id, created, modelId, t.Sequence, piece), aborted);
                if (texts.All(x => x.Stopped))
                {
                    finishedEarly.Cancel();                 // every answer reached a stop string: free the slot now
                    break;
                }
            }
            if (!finishedEarly.IsCancellationRequested || timeout.IsCancellationRequested) result = await job.Completion;
        }
        catch (OperationCanceledException) when (aborted.IsCancellationRequested)
        {
            return;                                          // the client left; its slot is freed at the next step
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested)
        {
            var e = new ApiException(504, $"the generation took longer than the server's request timeout " +
                $"({models.Options.RequestTimeout.TotalSeconds:0} s); ask for fewer max_tokens.", "timeout", code: "timeout");
            if (sse is null) throw e;
            await sse.SendAsync(e.Body, CancellationToken.None);
            return;
        }
        catch (Exception e) when (sse is not null && e is not OperationCanceledException)
        {
            await sse.SendAsync(new ApiException(500, $"generation failed: {e.Message}", "server_error").Body, CancellationToken.None);
            return;
        }
        catch (Exception e) when (e is not ApiException and not OperationCanceledException)
        {
            throw new ApiException(500, $"generation failed: {e.Message}", "server_error");
        }

        // Beam search streams nothing while it runs: its sequences are read whole here.
        if (options.NumBeams > 1 && result is not null)
            for (int i = 0; i < texts.Length && i < result.Count; i++)
                foreach (int token in result[i].Tokens) texts[i].Push(token);
        int[] eos = options.EosTokenId ?? pipeline.Generator.DefaultEos;
        var reasons = texts.Select((x, i) => FinishReason(x, result?.ElementAtOrDefault(i), options, eos)).ToArray();
        int completionTokens = texts.Select((x, i) => x.Stopped || result is null ? x.TokenCount : result[i].Tokens.Count).Sum();
        var usage = new Usage(promptTokens, completionTokens, promptTokens + completionTokens);
        metrics.Generation(promptTokens, completionTokens, job.TimeToFirstToken, Stopwatch.GetElapsedTime(started));

        if (sse is null)
        {
            var choices = texts.Select((x, i) => new ChatChoice(i, new AssistantMessage("assistant", x.Text), reasons[i])).ToList();
            await http.Response.WriteAsJsonAsync(new ChatCompletion(id, "chat.completion", created, modelId, choices, usage), Wire.Json, aborted);
            return;
        }
        for (int i = 0; i < texts.Length; i++)
        {
            string rest = texts[i].Finish();
            if (rest.Length > 0) await sse.SendAsync(Chunk(id, created, modelId, i, rest), aborted);
            await sse.SendAsync(new ChatCompletionChunk(id, "chat.completion.chunk", created, modelId,
                [new ChunkChoice(i, new Delta(), reasons[i])]), aborted);
        }
        if (request.StreamOptions?.IncludeUsage == true)
            await sse.SendAsync(new ChatCompletionChunk(id, "chat.completion.chunk", created, modelId, [], usage), aborted);
        await sse.DoneAsync(aborted);
    }

    private static ChatCompletionChunk Chunk(string id, long created, string model, int index, string text) =>
        new(id, "chat.completion.chunk", created, model, [new ChunkChoice(index, new Delta(Content: text), null)]);

    /// <summary>"stop" when a stop token or string ended the answer, "length" when max_tokens did.</summary>
    private static string FinishReason(TextStream text, GeneratedSequence? sequence, GenerationOptions o, int[] eos)
    {
        if (text.Stopped || sequence is null || sequence.Tokens.Count < o.MaxNewTokens) return "stop";
        return eos.Contains(sequence.Tokens[^1]) ? "stop" : "length";
    }

    private static string PromptFor(Blip2Pipeline pipeline, Conversation c, GenerationOptions options)
    {
        try
        {
            return ChatPrompt.Fitting(pipeline, c.Turns, 0, c.Question, options).Prompt;
        }
        catch (ArgumentException e)
        {
            throw ApiException.BadRequest(e.Message, "messages", "context_length_exceeded");
        }
    }

    /// <summary>The request's decoding settings, checked; every refusal names its parameter.</summary>
    public static GenerationOptions Settings(ChatCompletionRequest r, ServerOptions server)
    {
        string maxParam = r.MaxCompletionTokens is not null ? "max_completion_tokens" : "max_tokens";
        int maxTokens = r.MaxCompletionTokens ?? r.MaxTokens ?? DefaultMaxTokens;
        if (maxTokens < 1) throw ApiException.BadRequest($"{maxParam} must be at least 1 (got {maxTokens}).", maxParam);
        if (maxTokens > server.MaxTokensCap)
            throw ApiException.BadRequest($"{maxParam} {maxTokens} is above this server's cap of {server.MaxTokensCap}; ask for fewer.",
                maxParam, "max_tokens_too_large");
        double temperature = r.Temperature ?? 0;
        if (temperature is < 0 or > 2 || double.IsNaN(temperature))
            throw ApiException.BadRequest($"temperature must be between 0 and 2 (got {temperature}).", "temperature");
        bool sample = temperature > 0;
        int n = r.N ?? 1;
        int beams = r.NumBeams ?? 1;
        if (n < 1) throw ApiException.BadRequest($"n must be at least 1 (got {n}).", "n");
        if (n > 1 && !sample && beams < n)
            throw ApiException.BadRequest($"n = {n} needs sampling (temperature above 0) or num_beams of at least {n}: greedy decoding " +
                "gives one answer.", "n");
        if (sample && beams > 1)
            throw ApiException.BadRequest("num_beams above 1 is beam search, which does not sample: set temperature to 0 or num_beams to 1.", "num_beams");
        var o = new GenerationOptions
        {
            MaxNewTokens = maxTokens,
            MinNewTokens = r.MinNewTokens ?? 0,
            NumBeams = beams,
            NumReturnSequences = n,
            DoSample = sample,
            Temperature = sample ? temperature : 1.0,
            TopP = r.TopP ?? 1.0,
            TopK = r.TopK ?? 50,
            Seed = r.Seed is { } s ? unchecked((ulong)s) : null,
            LengthPenalty = r.LengthPenalty ?? 1.0,
            RepetitionPenalty = r.RepetitionPenalty ?? 1.0,
            NoRepeatNgramSize = r.NoRepeatNgramSize ?? 0,
        };
        try
        {
            o.Validate();
        }
        catch (ArgumentException e)
        {
            throw ApiException.BadRequest(e.Message, ParamOf(e.Message));
        }
        if (beams * n > server.MaxBatch || (sample ? n : beams) > server.MaxBatch)
            throw ApiException.BadRequest($"the request decodes {Math.Max(beams, n)} sequences but this server's --max-batch is {server.MaxBatch}.", "num_beams");
        return o;
    }

    private static string? ParamOf(string message) =>
        new[] { "max_new_tokens", "min_new_tokens", "num_beams", "num_return_sequences", "temperature", "top_k", "top_p",
            "repetition_penalty", "no_repeat_ngram_size", "length_penalty" }.FirstOrDefault(message.StartsWith) switch
        {
            "num_return_sequences" => "n",
            "max_new_tokens" => "max_tokens",
            var p => p,
        };

    /// <summary>stop: a string or a list of up to four strings.</summary>
    public static List<string> Stops(JsonElement? stop)
    {
        if (stop is not { } s || s.ValueKind == JsonValueKind.Null) return [];
        if (s.ValueKind == JsonValueKind.String) return [s.GetString()!];
        if (s.ValueKind == JsonValueKind.Array && s.GetArrayLength() <= 4 && s.EnumerateArray().All(x => x.ValueKind == JsonValueKind.String))
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
