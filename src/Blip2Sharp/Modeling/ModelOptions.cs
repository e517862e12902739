using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Blip2Sharp.Modeling;

/// <summary>
/// Where and in which dtype a model's parameters are created. Parameters start uninitialised
/// (<c>torch.empty</c>): loading overwrites them, and <see cref="ModelInit"/> fills them for random-weight
/// models. On the <c>meta</c> device nothing is allocated, which is how the full-size manifests are checked.
/// </summary>
public sealed record ModelOptions
{
    public Device Device { get; init; } = CPU;
    public ScalarType DType { get; init; } = ScalarType.Float32;

    public static ModelOptions Cpu { get; } = new();
    public static ModelOptions Meta { get; } = new() { Device = new Device("meta") };

    internal Parameter Param(params long[] shape) =>
        new(empty(shape, DType, Device), requires_grad: true);

    /// <summary>The same placement with another dtype (the Q-Former and query tokens always stay float32).</summary>
    public ModelOptions WithDType(ScalarType dtype) => this with { DType = dtype };
}
