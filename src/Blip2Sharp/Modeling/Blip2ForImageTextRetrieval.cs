using Blip2Sharp.Configuration;
using Blip2Sharp.Loading;
using Blip2Sharp.Modeling.Layers;
using Blip2Sharp.Modeling.QFormer;
using Blip2Sharp.Modeling.Vision;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;
using Parameter = TorchSharp.Modules.Parameter;

namespace Blip2Sharp.Modeling;

/// <summary>ITM for image i with text i: logits [B, 2] (index 1 = match) and the Q-Former outputs [B, Q + T, E].</summary>
public sealed record ItmOutput(Tensor LogitsPerImage, Tensor TextEmbeds) : IDisposable
{
    public Tensor LogitsPerText => LogitsPerImage.t();
    public Tensor Probabilities => LogitsPerImage.softmax(1);

    public void Dispose()
    {
        LogitsPerImage.Dispose();
        TextEmbeds.Dispose();
    }
}

/// <summary>ITC of every image with every text: logits [B_img, B_txt] = max over queries of cosine similarities.</summary>
public sealed record ItcOutput(Tensor LogitsPerImage, Tensor ImageEmbeds, Tensor TextEmbeds, Tensor TextLastHiddenState, VisionOutput Vision) : IDisposable
{
    public Tensor LogitsPerText => LogitsPerImage.t();

    public void Dispose()
    {
        LogitsPerImage.Dispose();
        ImageEmbeds.Dispose();
        TextEmbeds.Dispose();
        TextLastHiddenState.Dispose();
        Vision.Dispose();
    }
}

/// <summary>
/// Blip2ForImageTextRetrieval: the vision tower and the Q-Former with its text path and the retrieval heads
/// (vision_projection, text_projection, itm_head). Also serves Blip2VisionModelWithProjection and
/// Blip2TextModelWithProjection, whose weights are subsets of the same names.
/// </summary>
public sealed class Blip2ForImageTextRetrieval : nn.Module
{
    [ComponentName(Name = "vision_model")] private readonly Blip2VisionModel _visionModel;
    [ComponentName(Name = "query_tokens")] private readonly Parameter _queryTokens;
    [ComponentName(Name = "embeddings")] private readonly Blip2TextEmbeddings _embeddings;
    [ComponentName(Name = "qformer")] private readonly Blip2QFormerModel _qformer;
    [ComponentName(Name = "vision_projection")] private readonly Linear _visionProjection;
    [ComponentName(Name = "text_projection")] private readonly Linear _textProjection;
    [ComponentName(Name = "itm_head")] private readonly Linear _itmHead;

    public Blip2Config Config { get; }

    public Blip2ForImageTextRetrieval(Blip2Config c, ModelOptions o) : base(nameof(Blip2ForImageTextRetrieval))
    {
        if (!c.QFormerConfig.UseQFormerTextInput)
            throw new InvalidConfigException("image-text retrieval needs a Q-Former with a text path (qformer_config.use_qformer_text_input = true, as in blip2-itm-vit-g).");
        Config = c;
        var fp32 = o.WithDType(ScalarType.Float32);
        _visionModel = new Blip2VisionModel(c.VisionConfig, o);
        _queryTokens = fp32.Param(1, c.NumQueryTokens, c.QFormerConfig.HiddenSize);
        _embeddings = new Blip2TextEmbeddings(c.QFormerConfig, fp32);
        _qformer = new Blip2QFormerModel(c.QFormerConfig, fp32);
        _visionProjection = new Linear(c.QFormerConfig.HiddenSize, c.ImageTextHiddenSize, true, fp32);
        _textProjection = new Linear(c.QFormerConfig.HiddenSize, c.ImageTextHiddenSize, true, fp32);
        _itmHead = new Linear(c.QFormerConfig.HiddenSize, 2, true, fp32);
        RegisterComponents();
    }

    public Blip2VisionModel VisionModel => _visionModel;
    public Blip2QFormerModel QFormer => _qformer;
    public Blip2TextEmbeddings Embeddings => _embeddings;
    public Parameter QueryTokens => _queryTokens;
    public Linear VisionProjection => _visionProjection;
    public Linear TextProjection => _textProjection;
    public Linear ItmHead => _itmHead;
    public Device Device => _queryTokens.device;

    public static Blip2ForImageTextRetrieval FromPretrained(string folder, ModelOptions? options = null, ConfigWarnings? warnings = null)
    {
        var config = Blip2Config.Load(folder, warnings ?? new ConfigWarnings());
        var model = new Blip2ForImageTextRetrieval(config, options ?? ModelOptions.Cpu);
        try
        {
            using var reader = CheckpointReader.Open(folder);
            WeightLoader.Load(model, reader);
            model.eval();
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>The vision tower's last hidden state [B, 1 + N, D] (computed once per image, reused for every text).</summary>
    public VisionOutput EncodeImage(Tensor pixelValues) => _visionModel.Forward(pixelValues.to(Device));

    /// <summary>Q-Former query outputs for image features [B, 1 + N, D] → [B, Q, E].</summary>
    public Tensor QueryOutputs(Tensor imageEmbeds)
    {
        using var scope = NewDisposeScope();
        var queries = _queryTokens.expand(imageEmbeds.shape[0], -1, -1);
        return _qformer.Forward(queries, imageEmbeds: imageEmbeds).LastHiddenState.MoveToOuterDisposeScope();
    }

    /// <summary>Normalised image embeddings [B, Q, D] (Blip2VisionModelWithProjection.image_embeds).</summary>
    public Tensor ImageEmbeds(Tensor imageEmbeds)
    {
        using var scope = NewDisposeScope();
        return F.normalize(_visionProjection.forward(QueryOutputs(imageEmbeds)), dim: -1).MoveToOuterDisposeScope();
    }

    /// <summary>Text-only Q-Former pass (query_length 0): last hidden state [B, T, E].</summary>
    public Tensor TextHidden(Tensor inputIds, Tensor attentionMask)
    {
        using var scope = NewDisposeScope();
        var emb = _embeddings.Forward(inputIds.to(Device));
        return _qformer.Forward(emb, queryLength: 0, attentionMask: attentionMask.to(Device)).LastHiddenState.MoveToOuterDisposeScope();
    }

    /// <summary>Normalised text embeddings of every position [B, T, D] (Blip2TextModelWithProjection.text_embeds).</summary>
    public Tensor TextEmbedsAllPositions(Tensor textHidden) => F.normalize(_textProjection.forward(textHidden), dim: -1);

    /// <summary>
    /// ITM: image i with text i. Q-Former over [queries ; text] with mask [1]*Q + attention_mask, cross-attention
    /// at query positions; itm_head over the query outputs, averaged over queries.
    /// </summary>
    public ItmOutput Itm(Tensor imageEmbeds, Tensor inputIds, Tensor attentionMask)
    {
        using var scope = NewDisposeScope();
        long b = imageEmbeds.shape[0];
        if (inputIds.shape[0] != b) throw new ArgumentException($"ITM pairs image i with text i: {b} images but {inputIds.shape[0]} texts.");
        int q = (int)_queryTokens.shape[1];
        var queries = _queryTokens.expand(b, -1, -1);
        var mask = cat([ones(b, q, dtype: ScalarType.Int64, device: Device), attentionMask.to(Device).to(ScalarType.Int64)], 1); // [B, Q + T]
        var emb = _embeddings.Forward(inputIds.to(Device), queries);                                                            // [B, Q + T, E]
        var hidden = _qformer.Forward(emb, queryLength: q, attentionMask: mask, imageEmbeds: imageEmbeds).LastHiddenState;
        var logits = _itmHead.forward(hidden[.., ..q, ..]).mean([1]);                                                          // [B, 2]
        return new ItmOutput(logits.MoveToOuterDisposeScope(), hidden.MoveToOuterDisposeScope());
    }

    /// <summary>ITC similarity [B_img, B_txt] = max over queries of image_feats · text_feat (no temperature, as the reference).</summary>
    public static Tensor ItcSimilarity(Tensor imageFeats, Tensor textFeat)
    {
        using var scope = NewDisposeScope();
        var sims = imageFeats.matmul(textFeat.t()); // [B_img, Q, B_txt]
        return sims.max(1).values.MoveToOuterDisposeScope();
    }

    /// <summary>The reference's forward with use_image_text_matching_head=True.</summary>
    public ItmOutput ForwardItm(Tensor pixelValues, Tensor inputIds, Tensor attentionMask)
    {
        using var scope = NewDisposeScope();
        var vision = EncodeImage(pixelValues);
        var itm = Itm(vision.LastHiddenState, inputIds, attentionMask);
        return new ItmOutput(itm.LogitsPerImage.MoveToOuterDisposeScope(), itm.TextEmbeds.MoveToOuterDisposeScope());
    }

    /// <summary>The reference's forward with use_image_text_matching_head=False (ITC).</summary>
    public ItcOutput ForwardItc(Tensor pixelValues, Tensor inputIds, Tensor attentionMask)
    {
        using var scope = NewDisposeScope();
        var vision = EncodeImage(pixelValues);
        var imageFeats = ImageEmbeds(vision.LastHiddenState);                       // [B, Q, D]
        var textHidden = TextHidden(inputIds, attentionMask);                        // [B, T, E]
        var textFeat = F.normalize(_textProjection.forward(textHidden[.., 0, ..]), dim: -1); // [B, D]
        var logits = ItcSimilarity(imageFeats, textFeat);
        return new ItcOutput(logits.MoveToOuterDisposeScope(), imageFeats.MoveToOuterDisposeScope(), textFeat.MoveToOuterDisposeScope(),
            textHidden.MoveToOuterDisposeScope(),
            new VisionOutput(vision.LastHiddenState.MoveToOuterDisposeScope(), vision.PoolerOutput.MoveToOuterDisposeScope(), null));
    }
}
