using Blip2Sharp.Configuration;
using Blip2Sharp.Modeling.Layers;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Blip2Sharp.Modeling.Opt;

/// <summary>OPT multi-head self-attention (q scaled by head_dim^-0.5 before the product, as the reference).</summary>
public sealed class OptAttention : nn.Module
{
    [ComponentName(Name = "k_proj")] private readonly Linear _kProj;
    [ComponentName(Name = "v_proj")] private readonly Linear _vProj;
    [ComponentName(Name = "q_proj")] private readonly Linear _qProj;
    [ComponentName(Name = "out_proj")] private readonly Linear _outProj;
    private readonly int _heads, _headDim;
    private readonly double _scaling, _dropout;

    public OptAttention(OptConfig c, ModelOptions o) : base(nameof(OptAttention))
    {
        _heads = c.NumAttentionHeads;
        _headDim = c.HeadDim;
        _scaling = Math.Pow(_headDim, -0.5);
        _dropout = c.AttentionDropout;
        _kProj = new Linear(c.HiddenSize, c.HiddenSize, c.EnableBias, o);
        _vProj = new Linear(c.HiddenSize, c.HiddenSize, c.EnableBias, o);
        _qProj = new Linear(c.HiddenSize, c.HiddenSize, c.EnableBias, o);
        _outProj = new Linear(c.HiddenSize, c.HiddenSize, c.EnableBias, o);
        RegisterComponents();
    }

    private Tensor Heads(Tensor x, long b, long t) => x.view(b, t, _heads, _headDim).transpose(1, 2); // [B, H, T, Dh]

    /// <summary>hidden [B, T, E]; mask additive [B, 1, T, S]; cache holds the S - T earlier positions.</summary>
    public Tensor Forward(Tensor hidden, Tensor mask, LayerKvCache? cache = null)
    {
        using var scope = NewDisposeScope();
        var context = Context(hidden, _qProj.forward(hidden), _kProj.forward(hidden), _vProj.forward(hidden), mask, cache);
        return _outProj.forward(context).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// One decoding step of independent sequences stacked in hidden [N, 1, E]: the projections run once over all rows
    /// (each weight read once for the whole batch), the attention per segment over its own cache and mask.
    /// </summary>
    public Tensor Step(Tensor hidden, IReadOnlyList<DecodeSegment> segments, int layer)
    {
        using var scope = NewDisposeScope();
        var q = _qProj.forward(hidden);
        var k = _kProj.forward(hidden);
        var v = _vProj.forward(hidden);
        var contexts = new List<Tensor>(segments.Count);
        long at = 0;
        foreach (var s in segments)
        {
            contexts.Add(Context(hidden.narrow(0, at, s.Rows), q.narrow(0, at, s.Rows), k.narrow(0, at, s.Rows),
                v.narrow(0, at, s.Rows), s.Mask, s.Cache.Layers[layer]));
            at += s.Rows;
        }
        return _outProj.forward(cat(contexts, 0)).MoveToOuterDisposeScope();                 // [N, 1, E]
    }

    /// <summary>softmax(q·Kᵀ·scaling + mask)·V over the cached and new positions → [B, T, E] (before out_proj).</summary>
    private Tensor Context(Tensor hidden, Tensor q, Tensor k, Tensor v, Tensor mask, LayerKvCache? cache)
    {
        long b = hidden.shape[0], t = hidden.shape[1];
        if (cache is not null && !training && DecodeAttention.Applies(hidden, mask, cache, _heads))
        {
            // One new position: the cached attention in one managed pass (same values, see DecodeAttention).
            return DecodeAttention.Forward(q, k, v, mask, cache, _heads, _scaling);
        }
        q = Heads(Scalars.Mul(q, _scaling), b, t);
        k = Heads(k, b, t);
        v = Heads(v, b, t);
        if (cache is not null) (k, v) = cache.Append(k, v);                  // [B, H, S, Dh]
        var scores = Scalars.Add(q.matmul(k.transpose(-1, -2)), mask);           // [B, H, T, S]
        var probs = F.dropout(scores.softmax(-1), _dropout, training);
        return probs.matmul(v).transpose(1, 2).reshape(b, t, -1);             // [B, T, E]
    }
}
