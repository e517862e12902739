using System.Runtime.CompilerServices;
using Blip2Sharp.Generation;
using Blip2Sharp.Processing;
using static TorchSharp.torch;

namespace Blip2Sharp.Tasks;

/// <summary>A piece of one returned sequence's text, as it becomes certain.</summary>
public readonly record struct ChatUpdate(int Sequence, string Text);

/// <summary>One returned answer: its text, why it ended ("stop": a stop token or string; "length": max_new_tokens), its
/// tokens.</summary>
public sealed record ChatAnswer(string Text, string FinishReason, int CompletionTokens);

/// <summary>
/// One image-grounded generation through a <see cref="ContinuousBatcher"/>, for servers and chat clients: the image
/// preprocessed and the prompt encoded as the pipeline does, then the text of each returned sequence streamed as it
/// becomes certain (<see cref="TextStream"/>), cut at the first stop string (the request's slot is freed as soon as
/// every sequence has reached one). Beam search streams each answer whole at the end.
/// </summary>
public sealed class ChatGeneration
{
    private readonly Blip2Pipeline _pipeline;
    private readonly GenerationJob _job;
    private readonly TextStream[] _texts;
    private readonly CancellationTokenSource _stopped;
    private List<GeneratedSequence>? _result;

    private ChatGeneration(Blip2Pipeline pipeline, GenerationJob job, TextStream[] texts,
        CancellationTokenSource stopped, int promptTokens)
    {
        _pipeline = pipeline;
        _job = job;
        _texts = texts;
        _stopped = stopped;
        PromptTokens = promptTokens;
    }

    /// <summary>Prompt tokens with the image's query tokens.</summary>
    public int PromptTokens { get; }

    /// <summary>From submission to the first new token, once known.</summary>
    public TimeSpan? TimeToFirstToken => _job.TimeToFirstToken;

    /// <summary>
    /// Queues the generation (throws <see cref="QueueFullException"/> when the batcher's queue is full). Cancelling
    /// <paramref name="ct"/> frees the request's slot at the next step.
    /// </summary>
    public static ChatGeneration Start(Blip2Pipeline pipeline, ContinuousBatcher batcher, RgbImage image, string prompt,
        GenerationOptions options, IReadOnlyList<string>? stops, CancellationToken ct)
    {
        options.Validate();
        if (pipeline.ContextProblem(prompt, options) is { } problem) throw new ArgumentException(problem);
        using var scope = NewDisposeScope();
        var pixels = pipeline.Processor.ImageProcessor.Preprocess([image]);
        var (ids, mask) = pipeline.Processor.EncodePrompts([prompt], padLeft: pipeline.IsDecoderOnly);
        var config = pipeline.Model.Config;
        int promptTokens = (int)ids.shape[1] + (config.ImageTokenIndex is null ? config.NumQueryTokens : 0);
        var stopped = CancellationTokenSource.CreateLinkedTokenSource(ct);
        try
        {
            var job = batcher.Submit(pixels, ids, mask, options, stopped.Token);
            var texts = Enumerable.Range(0, options.NumReturnSequences).Select(_ => new TextStream(pipeline, stops))
                .ToArray();
            return new ChatGeneration(pipeline, job, texts, stopped, promptTokens);
        }
        catch
        {
            stopped.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The pieces of text as they come, then the rest of each answer once generation ends. Throws
    /// OperationCanceledException when the caller's token is cancelled, and the generation's error if it failed.
    /// </summary>
    public async IAsyncEnumerable<ChatUpdate> StreamAsync([EnumeratorCancellation] CancellationToken ct = default)
    {
        try
        {
            await foreach (var t in _job.Tokens.ReadAllAsync(ct))
            {
                string piece = _texts[t.Sequence].Push(t.Token);
                if (piece.Length > 0) yield return new ChatUpdate(t.Sequence, piece);
                if (_texts.All(x => x.Stopped))
                {
                    _stopped.Cancel();                      // every answer reached a stop string: free the slot now
                    break;
                }
            }
            if (!_texts.All(x => x.Stopped))
            {
                _result = await _job.Completion.WaitAsync(ct);
                // Beam search streams nothing while it runs: its sequences are read whole here.
                if (_job.Options.NumBeams > 1)
                    for (int i = 0; i < _texts.Length && i < _result.Count; i++)
                        foreach (int token in _result[i].Tokens) _texts[i].Push(token);
            }
            for (int i = 0; i < _texts.Length; i++)
            {
                string rest = _texts[i].Finish();
                if (rest.Length > 0) yield return new ChatUpdate(i, rest);
            }
        }
        finally
        {
            _stopped.Dispose();
        }
    }

    /// <summary>The answers, once <see cref="StreamAsync"/> has ended.</summary>
    public IReadOnlyList<ChatAnswer> Answers => [.. _texts.Select((x, i) => Answer(x, _result?.ElementAtOrDefault(i)))];

    private ChatAnswer Answer(TextStream text, GeneratedSequence? sequence)
    {
        var o = _job.Options;
        int tokens = text.Stopped || sequence is null ? text.TokenCount : sequence.Tokens.Count;
        int[] eos = o.EosTokenId ?? _pipeline.Generator.DefaultEos;
        bool length = !text.Stopped && sequence is not null && sequence.Tokens.Count >= o.MaxNewTokens
            && !eos.Contains(sequence.Tokens[^1]);
        return new ChatAnswer(text.Text, length ? "length" : "stop", tokens);
    }

    /// <summary>Runs to the end and returns the answers.</summary>
    public async Task<IReadOnlyList<ChatAnswer>> CompleteAsync(CancellationToken ct = default)
    {
        await foreach (var _ in StreamAsync(ct))
        {
        }
        return Answers;
    }
}
