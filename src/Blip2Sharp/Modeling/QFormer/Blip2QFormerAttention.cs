using Blip2Sharp.Configuration;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Blip2Sharp.Modeling.QFormer;

/// <summary>Attention (`attention`) followed by its post-LN residual (`output`).</summary>
public sealed class Blip2QFormerAttention : nn.Module
{
    [ComponentName(Name = "attention")] private readonly Blip2QFormerMultiHeadAttention _attention;
    [ComponentName(Name = "output")] private readonly Blip2QFormerSelfOutput _output;

    public Blip2QFormerAttention(Blip2QFormerConfig c, bool isCrossAttention, ModelOptions o) : base(nameof(Blip2QFormerAttention))
    {
        _attention = new Blip2QFormerMultiHeadAttention(c, isCrossAttention, o);
        _output = new Blip2QFormerSelfOutput(c, o);
        RegisterComponents();
    }

    public (Tensor Output, Tensor Key, Tensor Value) Forward(Tensor hidden, Tensor? mask, Tensor? encoderHidden = null, (Tensor Key, Tensor Value)? past = null)
    {
        using var scope = NewDisposeScope();
        var (context, k, v) = _attention.Forward(hidden, mask, encoderHidden, past);
        var output = _output.forward(context, hidden);
        return (output.MoveToOuterDisposeScope(), k.MoveToOuterDisposeScope(), v.MoveToOuterDisposeScope());
    }
}
