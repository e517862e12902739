using Blip2Sharp.Modeling;
using Blip2Sharp.Modeling.Layers;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;
using Parameter = TorchSharp.Modules.Parameter;

namespace Blip2Sharp.Training;

public sealed record Stage1Losses(Tensor Itc, Tensor Itm, Tensor Itg) : IDisposable
{
    public Tensor Total => Itc + Itm + Itg;

    public void Dispose()
    {
        Itc.Dispose();
        Itm.Dispose();
        Itg.Dispose();
    }
}

/// <summary>
/// Stage 1, representation learning, as LAVIS's blip2_qformer computes it (lavis/models/blip2_models/
/// blip2_qformer.py at 506965b, checked against the train-stage1 fixture): one Q-Former, three losses that differ in
/// the self-attention mask. The image encoder is frozen (no gradients, eval mode) but not its final LayerNorm (LAVIS's
/// ln_vision, our vision_model.post_layernorm: freeze_vit freezes visual_encoder only, blip2_qformer.py:66); the
/// Q-Former, the queries, the projections, itm_head, the ITG head and the temperature learn.
/// </summary>
public sealed class Stage1Objective : nn.Module
{
    public const double LabelSmoothing = 0.1;

    [ComponentName(Name = "model")] private readonly Blip2ForImageTextRetrieval _model;
    [ComponentName(Name = "itg_head")] private readonly ItgHead _itgHead;
    [ComponentName(Name = "temp")] private readonly Parameter _temp;

    public Blip2ForImageTextRetrieval Model => _model;
    public ItgHead ItgHead => _itgHead;
    public Parameter Temp => _temp;
    public int DecTokenId { get; }
    /// <summary>Frozen vision layers skipped at the end (see TrainConfig.DropLastVisionLayers).</summary>
    public int DropLastVisionLayers { get; init; }
    public int PadTokenId { get; }

    public Stage1Objective(Blip2ForImageTextRetrieval model, int decTokenId, int padTokenId) : base(nameof(Stage1Objective))
    {
        _model = model;
        var o = new ModelOptions { Device = model.Device };
        _itgHead = new ItgHead(model.Config.QFormerConfig, o);
        _temp = new Parameter(full([], 0.07f, device: model.Device), requires_grad: true); // learnable, init 0.07
        DecTokenId = decTokenId;
        PadTokenId = padTokenId;
        RegisterComponents();
        // The frozen image encoder; its post_layernorm (ln_vision) trains.
        foreach (var (name, p) in _model.VisionModel.named_parameters()) p.requires_grad = name.StartsWith("post_layernorm.");
    }

    /// <summary>
    /// Reads the ITG head and the temperature (itg_head.safetensors: itg_head.*, temp), strictly: every tensor of
    /// the objective outside the model must be there with its shape.
    /// </summary>
    public void LoadHeads(string file)
    {
        using var f = Loading.SafetensorsFile.Open(file);
        using var noGrad = no_grad();
        var own = named_parameters().Where(p => !p.name.StartsWith("model.")).ToDictionary(p => p.name, p => p.parameter);
        var missing = own.Keys.Where(k => !f.Contains(k)).ToList();
        if (missing.Count > 0) throw new CheckpointMismatchException($"{file} lacks {string.Join(", ", missing)}.");
        foreach (var (name, p) in own)
        {
            using var stored = f.ReadTensor(name);
            if (!stored.shape.SequenceEqual(p.shape))
                throw new CheckpointMismatchException($"{file}: {name} has shape [{string.Join(", ", stored.shape)}], expected [{string.Join(", ", p.shape)}].");
            p.copy_(stored);
        }
    }

    /// <summary>Puts the trainable parts in training mode and keeps the image encoder in eval mode.</summary>
    public void TrainMode()
    {
        train();
        _model.VisionModel.eval();
    }

    /// <summary>Cross-entropy with label smoothing ε: (1 − ε)·(−log p_y) + ε·mean_k(−log p_k).</summary>
    public static Tensor SmoothedCrossEntropy(Tensor logits, Tensor targets, double eps) =>
        F.cross_entropy(logits, targets, label_smoothing: eps);

    /// <summary>
    /// ITC (blip2_qformer.py:128-170): sim_i2t = max over queries of image_feats · text_feat / temp and sim_t2i =
    /// max over queries of text_feat · image_feats / temp, where the other side of each comes from
    /// concat_all_gather, which runs under no_grad (lavis/models/base_model.py:241): sim_i2t back-propagates into the
    /// image features only, sim_t2i into the text features only. Targets: label smoothing ε on the diagonal, or with
    /// image ids (LAVIS's caption datasets pass them) (1 − ε)·same-id / count + ε / B for both directions.
    /// </summary>
    public static (Tensor Loss, Tensor SimI2T, Tensor SimT2I) ItcLoss(Tensor imageFeats, Tensor textFeat, Tensor temp,
        Tensor? imageIds = null, double eps = LabelSmoothing)
    {
        using var scope = NewDisposeScope();
        var simI2T = imageFeats.matmul(textFeat.detach().t()).amax([1]) / temp;                 // [B_img, B_txt]
        var simT2I = imageFeats.detach().matmul(textFeat.t()).amax([1]).t() / temp;            // [B_txt, B_img]
        Tensor loss;
        if (imageIds is null)
        {
            var targets = arange(imageFeats.shape[0], dtype: ScalarType.Int64, device: imageFeats.device);
            loss = Scalars.Mul(Scalars.Add(SmoothedCrossEntropy(simI2T, targets, eps), SmoothedCrossEntropy(simT2I, targets, eps)), 0.5);
        }
        else
        {
            var pos = SameImage(imageIds, imageFeats.device).to(simI2T.dtype);                   // [B, B]
            var targets = pos / pos.sum(1, keepdim: true) * (1 - eps) + eps / pos.shape[0];
            var i2t = -(simI2T.log_softmax(1) * targets).sum(1).mean();
            var t2i = -(simT2I.log_softmax(1) * targets).sum(1).mean();
            loss = Scalars.Mul(Scalars.Add(i2t, t2i), 0.5);
        }
        return (loss.MoveToOuterDisposeScope(), simI2T.MoveToOuterDisposeScope(), simT2I.MoveToOuterDisposeScope());
    }

    /// <summary>[B, B] true where rows i and j show the same image (same id), the diagonal included.</summary>
    private static Tensor SameImage(Tensor imageIds, Device device)
    {
        var ids = imageIds.to(device).view(-1, 1);                                            // [B, 1]
        return ids.eq(ids.t());
    }

    /// <summary>
    /// Hard negatives for ITM, without gradient (blip2_qformer.py:176-204): for each text one image drawn from
    /// softmax(sim_t2i), then for each image one text from softmax(sim_i2t), the positives (the diagonal, or every
    /// pair of the same image id) set to −10000 so that they are never drawn.
    /// </summary>
    public static (long[] NegImageForText, long[] NegTextForImage) SampleNegatives(Tensor simI2T, Tensor simT2I,
        Generator generator, Tensor? imageIds = null)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        long b = simI2T.shape[0];
        if (b < 2) throw new ArgumentException("hard negatives need a batch of at least 2 pairs.");
        var positive = imageIds is null ? eye(b, dtype: ScalarType.Bool, device: simI2T.device) : SameImage(imageIds, simI2T.device);
        var wT2I = simT2I.detach().masked_fill(positive, Scalars.Of(-10000)).softmax(1);
        var wI2T = simI2T.detach().masked_fill(positive, Scalars.Of(-10000)).softmax(1);
        var negImage = wT2I.multinomial(1, generator: generator).squeeze(1).cpu().data<long>().ToArray();
        var negText = wI2T.multinomial(1, generator: generator).squeeze(1).cpu().data<long>().ToArray();
        return (negImage, negText);
    }

    /// <summary>
    /// The three losses of a batch. <paramref name="imageIds"/> [B] (optional): rows of one image are positives of each
    /// other in ITC and never each other's ITM negatives. <paramref name="negatives"/> replays given hard negatives
    /// (the fixtures' drawn indices) instead of sampling them.
    /// </summary>
    public Stage1Losses Forward(Tensor pixelValues, Tensor inputIds, Tensor attentionMask, Generator generator,
        Tensor? imageIds = null, (long[] NegImageForText, long[] NegTextForImage)? negatives = null)
    {
        using var scope = NewDisposeScope();
        var dev = _model.Device;
        inputIds = inputIds.to(dev);
        attentionMask = attentionMask.to(dev);
        long b = inputIds.shape[0];
        int q = (int)_model.QueryTokens.shape[1];
        Tensor encoded;
        using (no_grad()) encoded = _model.VisionModel.EncoderOutput(pixelValues.to(dev), DropLastVisionLayers).detach(); // frozen ViT
        var imageEmbeds = _model.VisionModel.PostLayernorm.forward(encoded);                // ln_vision, trainable

        // Queries read the image; their self-attention keys/values are kept for ITG.
        var queries = _model.QueryTokens.expand(b, -1, -1);
        var queryOut = _model.QFormer.Forward(queries, imageEmbeds: imageEmbeds, returnKv: true);
        var imageFeats = F.normalize(_model.VisionProjection.forward(queryOut.LastHiddenState), dim: -1); // [B, Q, D]

        // ITC: the text alone (uni-modal: queries and text never see each other).
        var textHidden = _model.QFormer.Forward(_model.Embeddings.Forward(inputIds), queryLength: 0, attentionMask: attentionMask).LastHiddenState;
        var textFeat = F.normalize(_model.TextProjection.forward(textHidden[.., 0, ..]), dim: -1);          // [B, D]
        // No clamp of the temperature: BLIP's pre-training clamps it to [0.001, 0.5], BLIP-2's never does.
        var (itc, simI2T, simT2I) = ItcLoss(imageFeats, textFeat, _temp, imageIds);

        // ITM: positives, (text, hard negative image) and (hard negative text, image), bi-directional mask.
        var (negImage, negText) = negatives ?? SampleNegatives(simI2T, simT2I, generator, imageIds);
        var negImageIdx = tensor(negImage, device: dev);
        var negTextIdx = tensor(negText, device: dev);
        var idsAll = cat([inputIds, inputIds, inputIds.index_select(0, negTextIdx)], 0);                    // [3B, T]
        var maskAll = cat([attentionMask, attentionMask, attentionMask.index_select(0, negTextIdx)], 0);
        var imagesAll = cat([imageEmbeds, imageEmbeds.index_select(0, negImageIdx), imageEmbeds], 0);      // [3B, S, D]
        using var itmOut = _model.Itm(imagesAll, idsAll, maskAll);
        var itmLabels = cat([ones(b, dtype: ScalarType.Int64, device: dev), zeros(2 * b, dtype: ScalarType.Int64, device: dev)]);
        var itm = F.cross_entropy(itmOut.LogitsPerImage, itmLabels);

        // ITG: [DEC] first; text sees every query (cached keys/values) and the text before it; queries never see text.
        var decIds = inputIds.clone();
        decIds[.., 0] = DecTokenId;
        var labels = decIds.masked_fill(decIds.eq(Scalars.Of(PadTokenId)), Scalars.Of(-100));
        var mmMask = QFormerMasks.MultimodalCausal(q, attentionMask)[.., q.., ..];                        // [B, T, Q + T]
        var itgHidden = _model.QFormer.Forward(_model.Embeddings.Forward(decIds), queryLength: 0,
            attentionMask: QFormerMasks.Additive(mmMask), past: queryOut.SelfAttentionKv).LastHiddenState;
        var scores = _itgHead.Forward(itgHidden, _model.Embeddings.WordEmbeddings);                       // [B, T, V]
        var shifted = scores[.., ..^1, ..].contiguous();
        var itg = F.cross_entropy(shifted.view(-1, shifted.shape[^1]), labels[.., 1..].contiguous().view(-1), ignore_index: -100, label_smoothing: LabelSmoothing);

        return new Stage1Losses(itc.MoveToOuterDisposeScope(), itm.MoveToOuterDisposeScope(), itg.MoveToOuterDisposeScope());
    }
}
