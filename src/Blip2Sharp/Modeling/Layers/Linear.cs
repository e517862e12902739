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

    /// <summary>False runs on the float weight although an int8 copy exists (comparing both in one process).</summary>
    public bool UseInt8 { get; set; } = true;

    public override Tensor forward(Tensor x) =>
        Int8 is not null && UseInt8 && !training ? Int8.Linear(x, _bias) : Apply(x, _weight, _bias);

    /// <summary>x Wᵀ + b: the streaming kernel for the one-row products of decoding, libtorch's otherwise (tied heads use it too).</summary>
    public static Tensor Apply(Tensor x, Tensor weight, Tensor? bias = null) =>
        FloatGemv.Applies(x, weight) ? FloatGemv.Linear(x, weight, bias) : F.linear(x, weight, bias);
}
