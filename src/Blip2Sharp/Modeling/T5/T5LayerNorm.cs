using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Blip2Sharp.Modeling.T5;

/// <summary>T5's RMS norm: no mean subtraction, no bias; the variance is computed in float32.</summary>
public sealed class T5LayerNorm : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "weight")] private readonly Parameter _weight;
    private readonly double _eps;

    public T5LayerNorm(long size, double eps, ModelOptions o) : base(nameof(T5LayerNorm))
    {
        _weight = o.Param(size);
        _eps = eps;
        RegisterComponents();
    }

    public override Tensor forward(Tensor h)
    {
        using var scope = NewDisposeScope();
        var variance = h.to(ScalarType.Float32).pow(2).mean([-1], keepdim: true);
        var normed = h * (variance + _eps).rsqrt();
        if (_weight.dtype is ScalarType.Float16 or ScalarType.BFloat16) normed = normed.to(_weight.dtype);
        return (_weight * normed).MoveToOuterDisposeScope();
    }
}
