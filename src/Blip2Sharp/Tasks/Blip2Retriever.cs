using Blip2Sharp.Configuration;
using Blip2Sharp.Modeling;
using Blip2Sharp.Processing;
using Blip2Sharp.Processing.Tokenizers;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Blip2Sharp.Tasks;

/// <summary>Features of images, computed once and reused by every text.</summary>
public sealed record ImageFeatures(Tensor VisionHidden, Tensor Embeds) : IDisposable
{
    /// <summary>Rows i..j of both tensors.</summary>
    public ImageFeatures Slice(long start, long count) => new(VisionHidden.narrow(0, start, count), Embeds.narrow(0, start, count));

    public void Dispose()
    {
        VisionHidden.Dispose();
        Embeds.Dispose();
    }
}

/// <summary>Tokenized texts and their normalised ITC embeddings [T, D].</summary>
public sealed record TextFeatures(Tensor InputIds, Tensor AttentionMask, Tensor Embeds) : IDisposable
{
    public void Dispose()
    {
        InputIds.Dispose();
        AttentionMask.Dispose();
        Embeds.Dispose();
    }
}

/// <summary>
/// Image-text matching and retrieval with the Q-Former alone (no language model is loaded): ITC similarity (max over
/// queries of normalised embeddings, no temperature) and ITM probability (softmax of itm_head, index 1), as the
/// reference computes them.
/// </summary>
public sealed class Blip2Retriever : IDisposable
{
    /// <summary>Texts are cut to this many tokens, [CLS] and [SEP] included (the paper's retrieval preset).</summary>
    public const int DefaultMaxTextTokens = 35;

    public Blip2ForImageTextRetrieval Model { get; }
    public BlipImageProcessor ImageProcessor { get; }
    public Tokenizer Tokenizer { get; }
    public int MaxTextTokens { get; init; } = DefaultMaxTextTokens;
    public IReadOnlyList<string> Warnings { get; }
    /// <summary>What made the vectors: the folder's config and preprocessing, for stores that must not mix models.</summary>
    public string Fingerprint { get; }

    private Blip2Retriever(Blip2ForImageTextRetrieval model, BlipImageProcessor images, Tokenizer tokenizer, IReadOnlyList<string> warnings, string fingerprint)
    {
        Model = model;
        ImageProcessor = images;
        Tokenizer = tokenizer;
        Warnings = warnings;
        Fingerprint = fingerprint;
    }

    public static Blip2Retriever FromPretrained(string folder, ModelOptions? options = null, ImageDecodeOptions? decodeOptions = null)
    {
        var warnings = new ConfigWarnings();
        var config = Blip2Config.Load(folder, warnings);
        if (!config.QFormerConfig.UseQFormerTextInput)
            throw new InvalidConfigException($"{folder}: this checkpoint has no retrieval heads (itm_head, vision_projection, text_projection and the Q-Former text path); use a Blip2ForImageTextRetrieval checkpoint such as Salesforce/blip2-itm-vit-g.");
        var model = Blip2ForImageTextRetrieval.FromPretrained(folder, options, warnings);
        try
        {
            var images = BlipImageProcessor.ForCheckpoint(folder, config, warnings, decodeOptions);
            var tokenizer = Tokenizer.FromPretrained(folder, warnings);
            string fingerprint = string.Join(";", Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(Path.Combine(folder, "config.json"))))[..16],
                $"size={images.Config.Size.Height}x{images.Config.Size.Width}", $"mean={string.Join(",", images.Config.ImageMean)}", $"std={string.Join(",", images.Config.ImageStd)}",
                $"weights={WeightsStamp(folder)}");
            return new Blip2Retriever(model, images, tokenizer, warnings.Items, fingerprint);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    private static string WeightsStamp(string folder)
    {
        var files = Directory.GetFiles(folder).Where(f => f.EndsWith(".safetensors") || f.EndsWith(".bin")).Order(StringComparer.Ordinal);
        return string.Join(",", files.Select(f => $"{Path.GetFileName(f)}:{new FileInfo(f).Length}"));
    }

    /// <summary>Vision features and normalised image embeddings [B, Q, D] of preprocessed pixels.</summary>
    public ImageFeatures EncodePixels(Tensor pixelValues)
    {
        using var scope = NewDisposeScope();
        using var noGrad = inference_mode();
        var vision = Model.EncodeImage(pixelValues);
        var embeds = Model.ImageEmbeds(vision.LastHiddenState);
        return new ImageFeatures(vision.LastHiddenState.MoveToOuterDisposeScope(), embeds.MoveToOuterDisposeScope());
    }

    public ImageFeatures EncodeImages(IReadOnlyList<string> paths) => EncodePixels(ImageProcessor.PreprocessFiles(paths));

    /// <summary>[CLS] text [SEP], cut to MaxTextTokens, right-padded.</summary>
    public (Tensor InputIds, Tensor AttentionMask) Tokenize(IReadOnlyList<string> texts) =>
        Tokenizer.PadRight([.. texts.Select(t => Tokenizer.EncodeTruncated(t, MaxTextTokens))]);

    /// <summary>Normalised ITC text embeddings [T, D] (text_projection of the [CLS] output).</summary>
    public TextFeatures EncodeTexts(IReadOnlyList<string> texts)
    {
        if (texts.Count == 0) throw new ArgumentException("no texts given.");
        if (texts.Any(string.IsNullOrWhiteSpace)) throw new ArgumentException("a text is empty.");
        using var scope = NewDisposeScope();
        using var noGrad = inference_mode();
        var (ids, mask) = Tokenize(texts);
        var hidden = Model.TextHidden(ids, mask);
        var embeds = F.normalize(Model.TextProjection.forward(hidden[.., 0, ..]), dim: -1);
        return new TextFeatures(ids.MoveToOuterDisposeScope(), mask.MoveToOuterDisposeScope(), embeds.MoveToOuterDisposeScope());
    }

    /// <summary>ITC similarity [I, T]: max over queries of image·text, no temperature.</summary>
    public static Tensor ItcMatrix(Tensor imageEmbeds, Tensor textEmbeds) => Blip2ForImageTextRetrieval.ItcSimilarity(imageEmbeds, textEmbeds);

    /// <summary>ITM logits [I, T, 2] for every image with every text (image features reused for each text).</summary>
    public Tensor ItmLogits(ImageFeatures images, TextFeatures texts)
    {
        using var scope = NewDisposeScope();
        using var noGrad = inference_mode();
        long n = images.VisionHidden.shape[0], t = texts.InputIds.shape[0];
        var rows = new List<Tensor>();
        for (long i = 0; i < n; i++)
        {
            var vision = images.VisionHidden[i].unsqueeze(0).expand(t, -1, -1); // [T, S, D_vision]
            using var itm = Model.Itm(vision, texts.InputIds, texts.AttentionMask);
            rows.Add(itm.LogitsPerImage.clone());                               // [T, 2]
        }
        return stack(rows).MoveToOuterDisposeScope();                           // [I, T, 2]
    }

    /// <summary>ITM probability of a match [I, T] (softmax over itm_head's two logits, index 1).</summary>
    public Tensor ItmProbabilities(ImageFeatures images, TextFeatures texts)
    {
        using var scope = NewDisposeScope();
        return ItmLogits(images, texts).softmax(-1)[.., .., 1].MoveToOuterDisposeScope();
    }

    /// <summary>Multimodal embeddings: the Q-Former query outputs [Q, E] for image i read with text i.</summary>
    public Tensor MultimodalEmbeds(ImageFeatures images, TextFeatures texts)
    {
        using var scope = NewDisposeScope();
        using var noGrad = inference_mode();
        using var itm = Model.Itm(images.VisionHidden, texts.InputIds, texts.AttentionMask);
        int q = (int)Model.QueryTokens.shape[1];
        return itm.TextEmbeds[.., ..q, ..].clone().MoveToOuterDisposeScope();
    }

    public void Dispose() => Model.Dispose();
}
