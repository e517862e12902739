using Blip2Sharp.Configuration;
using Blip2Sharp.Modeling.Layers;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Blip2Sharp.Modeling.Vision;

/// <summary>
/// EVA-style multi-head self-attention with one fused qkv Linear. Its bias is q_bias, a zero k bias and v_bias
/// concatenated (EVA has no k bias); v4.45.1 stores the concatenation as qkv.bias, the first releases stored
/// q_bias / v_bias separately (the loader rebuilds qkv.bias from those).
/// </summary>
public sealed class Blip2Attention : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "qkv")] private readonly Linear _qkv;
    [ComponentName(Name = "projection")] private readonly Linear _projection;
    private readonly int _heads, _headDim;
    private readonly double _scale;

    public Blip2Attention(Blip2VisionConfig c, ModelOptions o) : base(nameof(Blip2Attention))
    {
        _heads = c.NumAttentionHeads;
        _headDim = c.HeadDim;
        _scale = Math.Pow(_headDim, -0.5);
        _qkv = new Linear(c.HiddenSize, 3L * c.HiddenSize, c.QkvBias, o);
        _projection = new Linear(c.HiddenSize, c.HiddenSize, true, o);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden)
    {
        using var scope = NewDisposeScope();
        long b = hidden.shape[0], t = hidden.shape[1], e = hidden.shape[2];
        var qkv = _qkv.forward(hidden)
            .reshape(b, t, 3, _heads, _headDim)   // [B, T, 3, H, Dh]
            .permute(2, 0, 3, 1, 4);               // [3, B, H, T, Dh]
        var (q, k, v) = (qkv[0], qkv[1], qkv[2]);
        var scores = Scalars.Mul(q.matmul(k.transpose(-1, -2)), _scale);      // [B, H, T, T]
        var probs = scores.softmax(-1);
        var context = probs.matmul(v).permute(0, 2, 1, 3)          // [B, T, H, Dh]
            .reshape(b, t, e);                                     // [B, T, E]
        return _projection.forward(context).MoveToOuterDisposeScope();
    }
}
