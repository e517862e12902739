using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static TorchSharp.torch;

namespace Blip2Sharp.Modeling.Layers;

/// <summary>
/// y = x Wᵀ + b for one to sixteen rows of x in float32, the shape of every decoding step (sixteen: a continuous
/// batch of sequences, each row computed exactly as it is alone, so a sequence's tokens do not depend on its batch;
/// each weight row stays in the L1/L2 cache across the rows' dot products): an AVX2/FMA kernel that
/// streams each weight row once over all threads, so decoding runs at memory speed (libtorch's one-row product
/// streams the weights well below the machine's read bandwidth here).
/// </summary>
public static unsafe class FloatGemv
{
    public const int MaxRows = 16;

    /// <summary>
    /// Software prefetch distance over each weight row, in bytes: with the hardware prefetcher alone the kernel streamed
    /// 43 GB/s, with 2 KB ahead 46 (mean of 10 paired rounds over 20 × 10240×2560 fp32, 2 threads; 4 KB: 43, 8 KB:
    /// 45). Prefetches never fault, so running past the end of the weight is harmless.
    /// </summary>
    private const int PrefetchDistance = 2048;

    /// <summary>CPU float32 without autograd (inference), at most <see cref="MaxRows"/> rows.</summary>
    public static bool Applies(Tensor x, Tensor w) =>
        Avx2.IsSupported && Fma.IsSupported && !is_grad_enabled()
        && x.device_type == TorchSharp.DeviceType.CPU && w.device_type == TorchSharp.DeviceType.CPU
        && x.dtype == ScalarType.Float32 && w.dtype == ScalarType.Float32 && w.is_contiguous()
        && x.NumberOfElements / w.shape[1] <= MaxRows;

    public static Tensor Linear(Tensor x, Tensor w, Tensor? bias)
    {
        long outF = w.shape[0], inF = w.shape[1];
        long rows = x.NumberOfElements / inF;
        using var xc = Dense(x);
        using var bc = bias is null ? null : bias.clone();
        var y = empty([rows, outF], ScalarType.Float32);
        var wBytes = w.bytes;
        var xBytes = xc.bytes;
        var yBytes = y.bytes;
        fixed (byte* wb = wBytes)
        fixed (byte* xb = xBytes)
        fixed (byte* yb = yBytes)
        {
            float* wp = (float*)wb, xp = (float*)xb, yp = (float*)yb;
            float[]? bArr = bc?.data<float>().ToArray();
            DecodeThreads.ForRanges(outF, (start, end) =>
            {
                long o = start;
                for (; o < end; o++)
                {
                    float* row = wp + o * inF;
                    for (long r = 0; r < rows; r++)
                        yp[r * outF + o] = Dot(row, xp + r * inF, inF) + (bArr is null ? 0f : bArr[o]);
                }
            });
        }
        long[] shape = [.. x.shape[..^1], outF];
        return y.view(shape);
    }

    /// <summary>Contiguous, with its data at the start of its storage: Tensor.bytes then spans exactly its elements.</summary>
    internal static bool IsDense(Tensor x) => x.storage_offset() == 0 && x.is_contiguous();

    /// <summary>
    /// x itself (an alias) when its data starts its storage and is contiguous, else a contiguous copy: Tensor.bytes spans
    /// the whole storage from its start, so a kernel reading it needs the data there. The contiguous intermediate is
    /// held in a local, rooted while clone reads it (see AdamW.ZeroGrad).
    /// </summary>
    internal static Tensor Dense(Tensor x)
    {
        if (IsDense(x)) return x.alias();
        using var contiguous = x.contiguous();
        return contiguous.clone();
    }

    /// <summary>Dot product with eight independent accumulators (enough loads in flight to stream at memory speed).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Dot(float* a, float* b, long n)
    {
        var acc0 = Vector256<float>.Zero; var acc1 = acc0; var acc2 = acc0; var acc3 = acc0;
        var acc4 = acc0; var acc5 = acc0; var acc6 = acc0; var acc7 = acc0;
        long i = 0;
        for (; i + 64 <= n; i += 64)
        {
            byte* ahead = (byte*)(a + i) + PrefetchDistance;                     // the 64 floats' four cache lines
            Sse.Prefetch0(ahead); Sse.Prefetch0(ahead + 64); Sse.Prefetch0(ahead + 128); Sse.Prefetch0(ahead + 192);
            acc0 = Fma.MultiplyAdd(Avx.LoadVector256(a + i), Avx.LoadVector256(b + i), acc0);
            acc1 = Fma.MultiplyAdd(Avx.LoadVector256(a + i + 8), Avx.LoadVector256(b + i + 8), acc1);
            acc2 = Fma.MultiplyAdd(Avx.LoadVector256(a + i + 16), Avx.LoadVector256(b + i + 16), acc2);
            acc3 = Fma.MultiplyAdd(Avx.LoadVector256(a + i + 24), Avx.LoadVector256(b + i + 24), acc3);
            acc4 = Fma.MultiplyAdd(Avx.LoadVector256(a + i + 32), Avx.LoadVector256(b + i + 32), acc4);
            acc5 = Fma.MultiplyAdd(Avx.LoadVector256(a + i + 40), Avx.LoadVector256(b + i + 40), acc5);
            acc6 = Fma.MultiplyAdd(Avx.LoadVector256(a + i + 48), Avx.LoadVector256(b + i + 48), acc6);
            acc7 = Fma.MultiplyAdd(Avx.LoadVector256(a + i + 56), Avx.LoadVector256(b + i + 56), acc7);
        }
        for (; i + 8 <= n; i += 8) acc0 = Fma.MultiplyAdd(Avx.LoadVector256(a + i), Avx.LoadVector256(b + i), acc0);
        float sum = Vector256.Sum(Avx.Add(Avx.Add(Avx.Add(acc0, acc1), Avx.Add(acc2, acc3)), Avx.Add(Avx.Add(acc4, acc5), Avx.Add(acc6, acc7))));
        for (; i < n; i++) sum += a[i] * b[i];
        return sum;
    }
}
