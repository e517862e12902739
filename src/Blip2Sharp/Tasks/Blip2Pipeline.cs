using System.Diagnostics;
using Blip2Sharp.Configuration;
using Blip2Sharp.Generation;
using Blip2Sharp.Modeling;
using Blip2Sharp.Processing;
using static TorchSharp.torch;

namespace Blip2Sharp.Tasks;

/// <summary>One generated answer or caption, readable, with the ids behind it.</summary>
public sealed record GeneratedText(string Text, IReadOnlyList<int> GeneratedIds, double? Score);

/// <summary>The result for one image: the best text, every returned sequence, and where the time went.</summary>
public sealed record ImageTextResult(string Image, string Text, IReadOnlyList<GeneratedText> Sequences, IReadOnlyDictionary<string, double> TimingsMs);

/// <summary>
/// Captioning, visual question answering and chat over a BLIP-2 checkpoint folder: the model, its processor and the
/// generation engine together. Prompts are never echoed: only the new tokens are decoded, special tokens skipped,
/// and the text stripped.
/// </summary>
public sealed class Blip2Pipeline : IDisposable
{
    public Blip2ForConditionalGeneration Model { get; }
    public Blip2Processor Processor { get; }
    public Blip2Generator Generator { get; }
    public IReadOnlyList<string> Warnings { get; }

    private Blip2Pipeline(Blip2ForConditionalGeneration model, Blip2Processor processor, IReadOnlyList<string> warnings)
    {
        Model = model;
        Processor = processor;
        Generator = new Blip2Generator(model);
        Warnings = warnings;
    }

    public static Blip2Pipeline FromPretrained(string folder, ModelOptions? options = null, ImageDecodeOptions? decodeOptions = null, bool quantizeInt8 = false)
    {
        var warnings = new ConfigWarnings();
        var model = Blip2ForConditionalGeneration.FromPretrained(folder, options, warnings);
        try
        {
            if (quantizeInt8)
            {
                if (model.Opt is null) throw new ArgumentException("int8 quantization is implemented for OPT language models (Flan-T5 runs in float32).");
                model.Opt.QuantizeInt8();
            }
            var processor = Blip2Processor.FromPretrained(folder, model.Config, warnings, decodeOptions);
            return new Blip2Pipeline(model, processor, warnings.Items);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    public bool IsDecoderOnly => Model.Opt is not null;

    /// <summary>The paper's VQA prompt: "Question: {} Answer:" (OPT) or "Question: {} Short answer:" (Flan-T5).</summary>
    public string VqaPrompt(string question) => IsDecoderOnly ? $"Question: {question} Answer:" : $"Question: {question} Short answer:";

    /// <summary>Generates for each image with its own prompt ("" for plain captioning), as one batch.</summary>
    public List<ImageTextResult> Run(IReadOnlyList<string> imagePaths, IReadOnlyList<string> prompts, GenerationOptions options, CancellationToken ct = default)
    {
        if (imagePaths.Count != prompts.Count) throw new ArgumentException($"{imagePaths.Count} images but {prompts.Count} prompts.");
        var sw = Stopwatch.StartNew();
        using var scope = NewDisposeScope();
        var pixels = Processor.ImageProcessor.PreprocessFiles(imagePaths);
        double preprocessMs = sw.Elapsed.TotalMilliseconds;
        var results = RunOnPixels(pixels, prompts, options, ct);
        return results.Select((r, i) => new ImageTextResult(imagePaths[i], r.Text, r.Sequences,
            new Dictionary<string, double>(r.TimingsMs) { ["decode_and_preprocess"] = preprocessMs / imagePaths.Count })).ToList();
    }

    /// <summary>Generation on already preprocessed pixel_values [B, 3, H, W].</summary>
    public List<ImageTextResult> RunOnPixels(Tensor pixelValues, IReadOnlyList<string> prompts, GenerationOptions options, CancellationToken ct = default)
    {
        options.Validate();
        CheckPromptLength(prompts, options);
        var (ids, mask) = Processor.EncodePrompts(prompts, padLeft: IsDecoderOnly);
        var timings = new GenerationTimings();
        var sequences = Generator.Generate(pixelValues, ids, mask, options, timings: timings, cancellationToken: ct);
        int b = prompts.Count;
        return sequences.Select(seqs =>
        {
            var texts = seqs.Select(s => new GeneratedText(Decode(s.Tokens), s.Tokens, s.Score)).ToList();
            return new ImageTextResult("", texts[0].Text, texts, new Dictionary<string, double>
            {
                ["vision_and_qformer"] = timings.ImagePrefixMs / b,
                ["llm_prefill"] = timings.PrefillMs / b,
                ["generation"] = timings.DecodeMs / b,
                ["per_token"] = timings.Steps == 0 ? 0 : timings.DecodeMs / timings.Steps,
            });
        }).ToList();
    }

    /// <summary>New tokens → readable text: special tokens skipped, surrounding whitespace (OPT's "\n" stop) stripped.</summary>
    public string Decode(IEnumerable<int> tokens) =>
        Processor.Tokenizer.Decode(tokens.Where(t => t < Processor.Tokenizer.Count), skipSpecialTokens: true).Trim();

    /// <summary>
    /// Null when the prompt, the image tokens and max_new_tokens fit the language model's positions (OPT's learned
    /// positions end at max_position_embeddings; T5's relative positions have no end), else why not.
    /// </summary>
    public string? ContextProblem(string prompt, GenerationOptions options)
    {
        if (Model.Config.TextConfig is not OptConfig opt) return null;
        int length = Processor.Tokenizer.Encode(prompt).Ids.Count;
        int needed = Model.Config.NumQueryTokens + length + options.MaxNewTokens;
        return needed <= opt.MaxPositionEmbeddings ? null
            : $"the prompt ({length} tokens) + {Model.Config.NumQueryTokens} image tokens + max_new_tokens " +
              $"{options.MaxNewTokens} = {needed} exceeds the language model's {opt.MaxPositionEmbeddings} positions; " +
              "shorten the prompt or lower --max-new-tokens.";
    }

    private void CheckPromptLength(IReadOnlyList<string> prompts, GenerationOptions options)
    {
        foreach (var p in prompts)
            if (ContextProblem(p, options) is { } problem) throw new ArgumentException(problem);
    }

    public void Dispose() => Model.Dispose();
}
