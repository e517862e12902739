using Blip2Sharp.Configuration;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Blip2Sharp.Modeling.T5;

/// <summary>h + dropout(EncDecAttention(RMSNorm(h), encoder output)); no relative bias, only the encoder mask.</summary>
public sealed class T5LayerCrossAttention : nn.Module
{
    [ComponentName(Name = "EncDecAttention")] private readonly T5Attention _encDecAttention;
    [ComponentName(Name = "layer_norm")] private readonly T5LayerNorm _layerNorm;
    private readonly double _dropout;

    public T5LayerCrossAttention(T5Config c, ModelOptions o) : base(nameof(T5LayerCrossAttention))
    {
        _encDecAttention = new T5Attention(c, true, false, o);
        _layerNorm = new T5LayerNorm(c.DModel, c.LayerNormEpsilon, o);
        _dropout = c.DropoutRate;
        RegisterComponents();
    }

    public T5Attention Attention => _encDecAttention;

    public Tensor Forward(Tensor h, Tensor encoderBias, (Tensor Key, Tensor Value) crossKv)
    {
        using var scope = NewDisposeScope();
        var a = _encDecAttention.Forward(_layerNorm.forward(h), encoderBias, crossKv: crossKv);
        return (h + F.dropout(a, _dropout, training)).MoveToOuterDisposeScope();
    }
}
