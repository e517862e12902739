using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Blip2Sharp.Modeling.Layers;

/// <summary>nn.Linear: y = x Wᵀ + b, weight [out, in].</summary>
public sealed class Linear : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "weight")] private readonly Parameter _weight;
    [ComponentName(Name = "bias")] private readonly Parameter? _bias;

    public Linear(long inFeatures, long outFeatures, bool bias, ModelOptions o) : base(nameof(Linear))
    {
        _weight = o.Param(outFeatures, inFeatures);
        if (bias) _bias = o.Param(outFeatures);
        RegisterComponents();
    }

    public Parameter Weight => _weight;
    public Parameter? Bias => _bias;

    public override Tensor forward(Tensor x) => F.linear(x, _weight, _bias);
}
