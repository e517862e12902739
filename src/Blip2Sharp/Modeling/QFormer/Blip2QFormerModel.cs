using Blip2Sharp.Configuration;
using Blip2Sharp.Modeling.Layers;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Blip2Sharp.Modeling.QFormer;

public sealed record QFormerOutput(Tensor LastHiddenState, Tensor PoolerOutput, IReadOnlyList<Tensor>? HiddenStates,
    IReadOnlyList<(Tensor Key, Tensor Value)>? SelfAttentionKv) : IDisposable
{
    public void Dispose()
    {
        LastHiddenState.Dispose();
        PoolerOutput.Dispose();
        if (HiddenStates is not null) foreach (var t in HiddenStates) t.Dispose();
        if (SelfAttentionKv is not null) foreach (var (k, v) in SelfAttentionKv) { k.Dispose(); v.Dispose(); }
    }
}

/// <summary>
/// Blip2QFormerModel: LayerNorm + dropout over the input embeddings (the queries get no position embeddings),
/// then the layers (`encoder.layer`).
/// </summary>
public sealed class Blip2QFormerModel : nn.Module
{
    [ComponentName(Name = "layernorm")] private readonly LayerNorm _layernorm;
    [ComponentName(Name = "encoder")] private readonly Blip2QFormerEncoder _encoder;
    private readonly double _dropout;

    public Blip2QFormerConfig Config { get; }

    public Blip2QFormerModel(Blip2QFormerConfig c, ModelOptions o) : base(nameof(Blip2QFormerModel))
    {
        Config = c;
        _layernorm = new LayerNorm(c.HiddenSize, c.LayerNormEps, o);
        _encoder = new Blip2QFormerEncoder(c, o);
        _dropout = c.HiddenDropoutProb;
        RegisterComponents();
    }

    /// <summary>
    /// queryEmbeds [B, T, E] (queries first, then text); queryLength: how many leading positions are queries
    /// (defaults to all). attentionMask: [B, T] of 1/0 (padding) or an additive [B, 1, T|1, T] mask (the
    /// stage-1 masks). imageEmbeds [B, S, E_img] for cross-attention (all image positions visible).
    /// </summary>
    public QFormerOutput Forward(Tensor queryEmbeds, int? queryLength = null, Tensor? attentionMask = null, Tensor? imageEmbeds = null,
        bool outputHiddenStates = false, IReadOnlyList<(Tensor Key, Tensor Value)>? past = null, bool returnKv = false)
    {
        using var scope = NewDisposeScope();
        int q = queryLength ?? (int)queryEmbeds.shape[1];
        var h = F.dropout(_layernorm.forward(queryEmbeds), _dropout, training);
        Tensor? mask = attentionMask is null ? null
            : attentionMask.dim() == 2 ? AttentionMasks.Padding(attentionMask, h.dtype)
            : attentionMask.to(h.dtype);
        Tensor? imageMask = null; // every image position is attended: the reference's all-ones mask adds zeros
        if (imageEmbeds is not null) imageEmbeds = imageEmbeds.to(h.dtype);

        var states = outputHiddenStates ? new List<Tensor>() : null;
        var kvs = returnKv ? new List<(Tensor, Tensor)>() : null;
        for (int i = 0; i < _encoder.Layers.Count; i++)
        {
            states?.Add(h);
            var (output, k, v) = _encoder.Layers[i].Forward(h, mask, q, imageEmbeds, imageMask, past?[i]);
            kvs?.Add((k, v));
            h = output;
        }
        states?.Add(h);
        var pooled = h[.., 0, ..];
        return new QFormerOutput(h.MoveToOuterDisposeScope(), pooled.MoveToOuterDisposeScope(),
            states?.Select(s => s.MoveToOuterDisposeScope()).ToList(),
            kvs?.Select(kv => (kv.Item1.MoveToOuterDisposeScope(), kv.Item2.MoveToOuterDisposeScope())).ToList());
    }

    /// <summary>Blip2QFormerEncoder: holds the `layer` list.</summary>
    public sealed class Blip2QFormerEncoder : nn.Module
    {
        [ComponentName(Name = "layer")] private readonly TorchSharp.Modules.ModuleList<Blip2QFormerLayer> _layer;

        public Blip2QFormerEncoder(Blip2QFormerConfig c, ModelOptions o) : base(nameof(Blip2QFormerEncoder))
        {
            _layer = new TorchSharp.Modules.ModuleList<Blip2QFormerLayer>([.. Enumerable.Range(0, c.NumHiddenLayers).Select(i => new Blip2QFormerLayer(c, i, o))]);
            RegisterComponents();
        }

        public IList<Blip2QFormerLayer> Layers => _layer;
    }
}
