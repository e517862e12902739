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

    /// <summary>Set by <see cref="QuantizeInt8"/>: the int8 copy that inference uses instead of the float weight.</summary>
    public Int8Weight? Int8 { get; private set; }

    /// <summary>Switches inference to int8 weights (weight-only quantization for CPU decoding).</summary>
    public void QuantizeInt8() => Int8 ??= new Int8Weight(_weight);

    public override Tensor forward(Tensor x) =>
        Int8 is not null && !training ? Int8.Linear(x, _bias)
        : FloatGemv.Applies(x, _weight) ? FloatGemv.Linear(x, _weight, _bias)
        : F.linear(x, _weight, _bias);
}
