using System.Runtime.CompilerServices;
using Blip2Sharp.Generation;
using Blip2Sharp.Processing;
using Blip2Sharp.Tasks;
using Microsoft.Extensions.AI;

namespace Blip2Sharp.Clients;

/// <summary>
/// Microsoft.Extensions.AI's <see cref="IChatClient"/> over a BLIP-2 generation checkpoint. A request holds one
/// image (a <see cref="DataContent"/> of an image media type, in a user message); an image with no text asks for a
/// caption, a text is a question, and earlier user/assistant pairs are the chat context as `blip2 chat` chains it
/// (<see cref="ChatPrompt"/>). Thread-safe: concurrent calls share a <see cref="ContinuousBatcher"/>, so they are
/// decoded
/// together and each gets what it would get alone.
/// <para>Settings: <see cref="ChatOptions.MaxOutputTokens"/> (default 30), <see cref="ChatOptions.Temperature"/>
/// (0 or absent: greedy; above 0: sampling), TopP, TopK, Seed, StopSequences, and in
/// <see cref="ChatOptions.AdditionalProperties"/> transformers' names: num_beams, length_penalty, repetition_penalty,
/// no_repeat_ngram_size, min_new_tokens.</para>
/// </summary>
public sealed class Blip2ChatClient : IChatClient
{
    private readonly Blip2Pipeline _pipeline;
    private readonly ContinuousBatcher _batcher;
    private readonly bool _ownsPipeline;

    public Blip2ChatClient(Blip2Pipeline pipeline, string? modelId = null, int maxBatch = 16, int maxQueue = 256)
        : this(pipeline, modelId, maxBatch, maxQueue, ownsPipeline: false)
    {
    }

    private Blip2ChatClient(Blip2Pipeline pipeline, string? modelId, int maxBatch, int maxQueue, bool ownsPipeline)
    {
        _pipeline = pipeline;
        _batcher = new ContinuousBatcher(pipeline.Model, maxBatch, maxQueue);
        _ownsPipeline = ownsPipeline;
        Metadata = new ChatClientMetadata("blip2sharp", null, modelId ?? "blip2");
    }

    /// <summary>Loads a checkpoint folder; the client owns (and disposes) the pipeline.</summary>
    public static Blip2ChatClient FromPretrained(string folder, bool quantizeInt8 = false, int maxBatch = 16)
    {
        var pipeline = Blip2Pipeline.FromPretrained(folder, quantizeInt8: quantizeInt8);
        return new Blip2ChatClient(pipeline,
            Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(folder))), maxBatch, 256,
            ownsPipeline: true);
    }

    public ChatClientMetadata Metadata { get; }

    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        var generation = Start(messages, options, cancellationToken);
        var answers = await generation.CompleteAsync(cancellationToken);
        return new ChatResponse([.. answers.Select(a => new ChatMessage(ChatRole.Assistant, a.Text))])
        {
            ResponseId = Guid.NewGuid().ToString("N"),
            ModelId = Metadata.DefaultModelId,
            CreatedAt = DateTimeOffset.UtcNow,
            FinishReason = Reason(answers[0]),
            Usage = Usage(generation, answers),
        };
    }

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages,
        ChatOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var generation = Start(messages, options, cancellationToken);
        string id = Guid.NewGuid().ToString("N");
        await foreach (var piece in generation.StreamAsync(cancellationToken))
        {
            if (piece.Sequence != 0) continue;       // a stream carries one answer
            yield return new ChatResponseUpdate(ChatRole.Assistant, piece.Text) { ResponseId = id, MessageId = id,
                ModelId = Metadata.DefaultModelId };
        }
        var answers = generation.Answers;
        yield return new ChatResponseUpdate(ChatRole.Assistant, [new UsageContent(Usage(generation, answers))])
        {
            ResponseId = id,
            MessageId = id,
            ModelId = Metadata.DefaultModelId,
            FinishReason = Reason(answers[0]),
        };
    }

    private ChatGeneration Start(IEnumerable<ChatMessage> messages, ChatOptions? options, CancellationToken ct)
    {
        var list = messages.ToList();
        DataContent? image = null;
        var texts = new List<(string, string)>();
        foreach (var m in list)
        {
            foreach (var d in m.Contents.OfType<DataContent>().Where(d => d.HasTopLevelMediaType("image")))
            {
                if (m.Role != ChatRole.User) throw new InvalidSettingException("messages",
                    "only user messages may carry an image.");
                if (image is not null) throw new InvalidSettingException("messages",
                    "BLIP-2 reads one image per request; send one image.");
                image = d;
            }
            texts.Add((m.Role.Value,
                string.Join(" ", m.Contents.OfType<TextContent>().Select(t => t.Text.Trim())
                .Where(t => t.Length > 0))));
        }
        var (turns, question) = ChatPrompt.Read(texts);
        if (image is null) throw new InvalidSettingException("messages",
            "BLIP-2 answers about an image: add a DataContent with an image media type.");
        var generation = Settings(options).ToOptions();
        string prompt = ChatPrompt.For(_pipeline, turns, question, generation);
        var rgb = ImageDecoder.Decode(image.Data.ToArray(), image.Name ?? "image",
            _pipeline.Processor.ImageProcessor.DecodeOptions);
        return ChatGeneration.Start(_pipeline, _batcher, rgb, prompt, generation, options?.StopSequences?.ToList(), ct);
    }

    private static ChatSettings Settings(ChatOptions? o)
    {
        T? Extra<T>(string name) where T : struct =>
            o?.AdditionalProperties is { } p && p.TryGetValue(name, out var v) && v is not null
                ? (T)Convert.ChangeType(v is System.Text.Json.JsonElement j ? j.ToString() : v, typeof(T),
                    System.Globalization.CultureInfo.InvariantCulture)
                : null;
        return new ChatSettings
        {
            MaxTokens = o?.MaxOutputTokens,
            MaxTokensName = "MaxOutputTokens",
            Temperature = o?.Temperature,
            TopP = o?.TopP,
            TopK = o?.TopK,
            Seed = o?.Seed,
            NumBeams = Extra<int>("num_beams"),
            LengthPenalty = Extra<double>("length_penalty"),
            RepetitionPenalty = Extra<double>("repetition_penalty"),
            NoRepeatNgramSize = Extra<int>("no_repeat_ngram_size"),
            MinNewTokens = Extra<int>("min_new_tokens"),
        };
    }

    private static ChatFinishReason Reason(ChatAnswer a) => a.FinishReason == "length" ? ChatFinishReason.Length
        : ChatFinishReason.Stop;

    private static UsageDetails Usage(ChatGeneration g, IReadOnlyList<ChatAnswer> answers)
    {
        int output = answers.Sum(a => a.CompletionTokens);
        return new UsageDetails { InputTokenCount = g.PromptTokens, OutputTokenCount = output,
            TotalTokenCount = g.PromptTokens + output };
    }

    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is not null ? null
        : serviceType == typeof(ChatClientMetadata) ? Metadata
        : serviceType.IsInstanceOfType(this) ? this
        : serviceType == typeof(Blip2Pipeline) ? _pipeline
        : null;

    public void Dispose()
    {
        _batcher.Dispose();
        if (_ownsPipeline) _pipeline.Dispose();
    }
}
