using TorchSharp;
using static TorchSharp.torch;

namespace Blip2Sharp.Modeling.Layers;

/// <summary>
/// Arithmetic with Scalars that live as long as the program: TorchSharp's operators convert numbers to Scalars that
/// the GC may finalize while the native call still reads them (dotnet/TorchSharp#1434), which corrupts long runs at
/// random ("Unknown scalar type"). Hot paths use these instead.
/// </summary>
public static class Scalars
{
    private static readonly Scalar One = 1.ToScalar();
    private static readonly Dictionary<double, Scalar> Cache = [];

    /// <summary>A Scalar kept alive for the rest of the program (for per-module constants).</summary>
    public static Scalar Of(double value)
    {
        lock (Cache)
        {
            if (!Cache.TryGetValue(value, out var s)) Cache[value] = s = value.ToScalar();
            return s;
        }
    }

    /// <summary>a + b without an implicit Scalar.</summary>
    public static Tensor Add(Tensor a, Tensor b) => a.add(b, One);

    /// <summary>a · value without an implicit Scalar.</summary>
    public static Tensor Mul(Tensor a, double value) => a.mul(Of(value));
}
