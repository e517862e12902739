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
/// Stage 1, representation learning, as LAVIS's blip2_qformer computes it: one Q-Former, three losses that differ in
/// the self-attention mask. The image encoder is frozen (no gradients, eval mode); the Q-Former, the queries, the
/// projections, itm_head, the ITG head and the temperature learn.
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
        foreach (var p in _model.VisionModel.parameters()) p.requires_grad = false; // the frozen image encoder
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

    /// <summary>ITC: similarities = max over queries of image_feats · text_feat / temp; both directions, label smoothing.</summary>
    public static (Tensor Loss, Tensor SimI2T, Tensor SimT2I) ItcLoss(Tensor imageFeats, Tensor textFeat, Tensor temp, double eps = LabelSmoothing)
    {
        using var scope = NewDisposeScope();
        var simI2T = imageFeats.matmul(textFeat.t()).amax([1]) / temp;    // [B_img, B_txt]: max over queries
        var simT2I = simI2T.t();                                          // [B_txt, B_img]
        var targets = arange(imageFeats.shape[0], dtype: ScalarType.Int64, device: imageFeats.device);
        var loss = Scalars.Mul(Scalars.Add(SmoothedCrossEntropy(simI2T, targets, eps), SmoothedCrossEntropy(simT2I, targets, eps)), 0.5);
        return (loss.MoveToOuterDisposeScope(), simI2T.MoveToOuterDisposeScope(), simT2I.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// Hard negatives for ITM, without gradient: for each text one image drawn from softmax(sim_t2i) and for each image
    /// one text from softmax(sim_i2t), the positive masked out with −10000 so that it is never drawn.
    /// </summary>
    public static (long[] NegImageForText, long[] NegTextForImage) SampleNegatives(Tensor simI2T, Tensor simT2I, Generator generator)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        long b = simI2T.shape[0];
        if (b < 2) throw new ArgumentException("hard negatives need a batch of at least 2 pairs.");
        var eye = TorchSharp.torch.eye(b, dtype: ScalarType.Bool, device: simI2T.device);
        var wT2I = simT2I.detach().masked_fill(eye, Scalars.Of(-10000)).softmax(1);
        var wI2T = simI2T.detach().masked_fill(eye, Scalars.Of(-10000)).softmax(1);
        var negImage = wT2I.multinomial(1, generator: generator).squeeze(1).cpu().data<long>().ToArray();
        var negText = wI2T.multinomial(1, generator: generator).squeeze(1).cpu().data<long>().ToArray();
        return (negImage, negText);
    }

    public Stage1Losses Forward(Tensor pixelValues, Tensor inputIds, Tensor attentionMask, Generator generator)
    {
        using var scope = NewDisposeScope();
        var dev = _model.Device;
        inputIds = inputIds.to(dev);
        attentionMask = attentionMask.to(dev);
        long b = inputIds.shape[0];
        int q = (int)_model.QueryTokens.shape[1];
        Tensor imageEmbeds;
        using (no_grad()) imageEmbeds = _model.VisionModel.Forward(pixelValues.to(dev), dropLastLayers: DropLastVisionLayers).LastHiddenState.detach(); // frozen ViT

        // Queries read the image; their self-attention keys/values are kept for ITG.
        var queries = _model.QueryTokens.expand(b, -1, -1);
        var queryOut = _model.QFormer.Forward(queries, imageEmbeds: imageEmbeds, returnKv: true);
        var imageFeats = F.normalize(_model.VisionProjection.forward(queryOut.LastHiddenState), dim: -1); // [B, Q, D]

        // ITC: the text alone (uni-modal: queries and text never see each other).
        var textHidden = _model.QFormer.Forward(_model.Embeddings.Forward(inputIds), queryLength: 0, attentionMask: attentionMask).LastHiddenState;
        var textFeat = F.normalize(_model.TextProjection.forward(textHidden[.., 0, ..]), dim: -1);          // [B, D]
        using (no_grad()) _temp.clamp_(0.001, 0.5); // as LAVIS's BLIP models bound the temperature
        var (itc, simI2T, simT2I) = ItcLoss(imageFeats, textFeat, _temp);

        // ITM: positives, (text, hard negative image) and (hard negative text, image), bi-directional mask.
        var (negImage, negText) = SampleNegatives(simI2T, simT2I, generator);
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
