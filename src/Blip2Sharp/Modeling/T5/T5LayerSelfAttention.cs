using Blip2Sharp.Configuration;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Blip2Sharp.Modeling.T5;

/// <summary>h + dropout(SelfAttention(RMSNorm(h))).</summary>
public sealed class T5LayerSelfAttention : nn.Module
{
    [ComponentName(Name = "SelfAttention")] private readonly T5Attention _selfAttention;
    [ComponentName(Name = "layer_norm")] private readonly T5LayerNorm _layerNorm;
    private readonly double _dropout;

    public T5LayerSelfAttention(T5Config c, bool isDecoder, bool hasRelativeAttentionBias, ModelOptions o) : base(nameof(T5LayerSelfAttention))
    {
        _selfAttention = new T5Attention(c, isDecoder, hasRelativeAttentionBias, o);
        _layerNorm = new T5LayerNorm(c.DModel, c.LayerNormEpsilon, o);
        _dropout = c.DropoutRate;
        RegisterComponents();
    }

    public T5Attention Attention => _selfAttention;

    public Tensor Forward(Tensor h, Tensor positionBias, LayerKvCache? cache)
    {
        using var scope = NewDisposeScope();
        var a = _selfAttention.Forward(_layerNorm.forward(h), positionBias, cache);
        return (h + F.dropout(a, _dropout, training)).MoveToOuterDisposeScope();
    }
}
