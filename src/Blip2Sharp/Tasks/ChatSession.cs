using System.Runtime.CompilerServices;
using System.Text;
using Blip2Sharp.Generation;
using static TorchSharp.torch;

namespace Blip2Sharp.Tasks;

/// <summary>
/// Multi-turn chat about one image: the context is chained as "Question: … Answer: … ." before the new question,
/// as the BLIP-2 demos do; the image prefix is computed for every turn from the cached pixel values. When the
/// conversation outgrows the language model's context, the oldest turns are left out of it (<see cref="TurnsLeftOut"/>
/// says how many); a question too long to fit even alone is refused (ArgumentException) and the session goes on.
/// </summary>
public sealed class ChatSession(Blip2Pipeline pipeline, string imagePath) : IDisposable
{
    private readonly List<(string Question, string Answer)> _turns = [];
    private readonly Tensor _pixels = pipeline.Processor.ImageProcessor.PreprocessFiles([imagePath]).DetachFromDisposeScope();

    public IReadOnlyList<(string Question, string Answer)> Turns => _turns;

    /// <summary>How many of the oldest turns no longer fit the context and are left out of the prompt.</summary>
    public int TurnsLeftOut { get; private set; }

    /// <summary>The prompt for the next question, with every earlier turn still in the context in front.</summary>
    public string PromptFor(string question) => ChatPrompt.From(pipeline, _turns, TurnsLeftOut, question);

    /// <summary>Streams the answer's text as tokens arrive; the turn is recorded when the answer is complete.</summary>
    public async IAsyncEnumerable<string> AskAsync(string question, GenerationOptions options, [EnumeratorCancellation] CancellationToken ct = default)
    {
        if (string.IsNullOrWhiteSpace(question)) throw new ArgumentException("the question is empty.");
        (string prompt, TurnsLeftOut) = ChatPrompt.Fitting(pipeline, _turns, TurnsLeftOut, question, options); // a refused one changes nothing
        var (ids, mask) = pipeline.Processor.EncodePrompts([prompt], padLeft: pipeline.IsDecoderOnly);
        var tokens = new List<int>();
        string shown = "";
        await foreach (var token in pipeline.Generator.Stream(_pixels, ids, mask, options, ct))
        {
            tokens.Add(token);
            string text = pipeline.Processor.Tokenizer.Decode(tokens.Where(t => t < pipeline.Processor.Tokenizer.Count), skipSpecialTokens: true);
            // Emit only complete characters: a partial UTF-8 sequence decodes to U+FFFD until its last byte arrives.
            if (text.Length > shown.Length && !text.EndsWith('\uFFFD') && text.StartsWith(shown, StringComparison.Ordinal))
            {
                yield return text[shown.Length..];
                shown = text;
            }
        }
        string final = pipeline.Processor.Tokenizer.Decode(tokens.Where(t => t < pipeline.Processor.Tokenizer.Count), skipSpecialTokens: true);
        if (final.Length > shown.Length && final.StartsWith(shown, StringComparison.Ordinal)) yield return final[shown.Length..]; // what was held back
        _turns.Add((question, pipeline.Decode(tokens)));
    }

    public void Dispose() => _pixels.Dispose();
}
