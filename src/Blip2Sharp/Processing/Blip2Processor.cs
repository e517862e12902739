using Blip2Sharp.Configuration;
using Blip2Sharp.Processing.Tokenizers;
using static TorchSharp.torch;

namespace Blip2Sharp.Processing;

/// <summary>
/// Blip2Processor: images through <see cref="BlipImageProcessor"/>, text through the checkpoint's tokenizer, and
/// Q × &lt;image&gt; tokens in front of each tokenized prompt (before OPT's &lt;/s&gt; and before any padding), as the
/// reference does per row. Decoder-only models pad on the left (new tokens follow the prompt); T5 pads on the
/// right so that the relative positions between the image tokens and the text do not change.
/// </summary>
public sealed class Blip2Processor
{
    public BlipImageProcessor ImageProcessor { get; }
    public Tokenizer Tokenizer { get; }
    /// <summary>How many &lt;image&gt; tokens go in front of each prompt; 0 for legacy checkpoints (no image token).</summary>
    public int NumImageTokens { get; }
    public int? ImageTokenId { get; }

    public Blip2Processor(BlipImageProcessor imageProcessor, Tokenizer tokenizer, int numImageTokens, int? imageTokenId)
    {
        ImageProcessor = imageProcessor;
        Tokenizer = tokenizer;
        NumImageTokens = imageTokenId is null ? 0 : numImageTokens;
        ImageTokenId = imageTokenId;
    }

    public static Blip2Processor FromPretrained(string folder, Blip2Config config, ConfigWarnings warnings, ImageDecodeOptions? decodeOptions = null)
    {
        string P(string f) => Path.Combine(folder, f);
        var images = BlipImageProcessor.ForCheckpoint(folder, config, warnings, decodeOptions);
        var tokenizer = Tokenizer.FromPretrained(folder, warnings);
        int q = File.Exists(P("processor_config.json"))
            ? ProcessorConfig.Load(P("processor_config.json"), warnings).NumQueryTokens ?? config.NumQueryTokens
            : config.NumQueryTokens;
        return new Blip2Processor(images, tokenizer, q, config.ImageTokenIndex);
    }

    /// <summary>input_ids and attention_mask [B, T] for prompts, padded on the given side after the image tokens.</summary>
    public (Tensor InputIds, Tensor AttentionMask) EncodePrompts(IReadOnlyList<string> prompts, bool padLeft)
    {
        var (ids, mask) = Tokenizer.EncodeBatch(prompts, padLeft);
        long[] image = [.. Enumerable.Repeat((long)(ImageTokenId ?? 0), NumImageTokens)];
        long[] ones = [.. Enumerable.Repeat(1L, NumImageTokens)];
        var rows = ids.Select(r => image.Concat(r).ToArray()).ToArray();
        var masks = mask.Select(r => ones.Concat(r).ToArray()).ToArray();
        int width = rows.Length == 0 ? 0 : rows[0].Length;
        return (tensor(rows.SelectMany(r => r).ToArray()).reshape(rows.Length, width),
                tensor(masks.SelectMany(r => r).ToArray()).reshape(rows.Length, width));
    }
}
