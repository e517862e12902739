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
        long b = hidden.shape[0], t = hidden.shape[1];
        if (cache is not null && !training && DecodeAttention.Applies(hidden, mask, cache, _heads))
        {
            // One new position: the cached attention in one managed pass (same values, see DecodeAttention).
            var context1 = DecodeAttention.Forward(_qProj.forward(hidden), _kProj.forward(hidden), _vProj.forward(hidden), mask, cache, _heads, _scaling);
            return _outProj.forward(context1).MoveToOuterDisposeScope();
        }
        var q = Heads(Scalars.Mul(_qProj.forward(hidden), _scaling), b, t);
        var k = Heads(_kProj.forward(hidden), b, t);
        var v = Heads(_vProj.forward(hidden), b, t);
        if (cache is not null) (k, v) = cache.Append(k, v);                  // [B, H, S, Dh]
        var scores = Scalars.Add(q.matmul(k.transpose(-1, -2)), mask);           // [B, H, T, S]
        var probs = F.dropout(scores.softmax(-1), _dropout, training);
        var context = probs.matmul(v).transpose(1, 2).reshape(b, t, -1);      // [B, T, E]
        return _outProj.forward(context).MoveToOuterDisposeScope();
    }
}
