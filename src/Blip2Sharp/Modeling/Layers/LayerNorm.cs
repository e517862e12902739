using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Blip2Sharp.Modeling.Layers;

/// <summary>nn.LayerNorm over the last dimension, with weight and bias.</summary>
public sealed class LayerNorm : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "weight")] private readonly Parameter _weight;
    [ComponentName(Name = "bias")] private readonly Parameter _bias;
    private readonly long[] _shape;
    private readonly double _eps;

    public LayerNorm(long size, double eps, ModelOptions o) : base(nameof(LayerNorm))
    {
        _weight = o.Param(size);
        _bias = o.Param(size);
        _shape = [size];
        _eps = eps;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => F.layer_norm(x, _shape, _weight, _bias, _eps);
}
