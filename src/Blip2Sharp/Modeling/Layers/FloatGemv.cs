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
            DecodeThreads.ForRanges(outF, (start, end) => Products(wp, xp, yp, bArr, inF, outF, (int)rows, start, end));
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

    /// <summary>
    /// y[r, o] = w[o] · x[r] + b[o] for output rows [start, end) and every input row. Each product is one chain of
    /// FMAs over 8-float chunks in order, summed across lanes, then the tail: the same operations in the same order
    /// whatever else is computed beside it, so a row's outputs are bit for bit the same alone or in a batch. The
    /// blocking only decides how many chains run side by side: one input row streams eight weight rows at once (memory
    /// bound: enough loads in flight); several take four weight rows × up to four input rows, 16 chains in registers
    /// (each weight chunk loaded once for four rows, each input chunk once for four weight rows: compute bound).
    /// </summary>
    private static void Products(float* w, float* x, float* y, float[]? bias, long n, long outF, int rows, long start, long end)
    {
        long o = start;
        if (rows == 1)
        {
            for (; o + 8 <= end; o += 8) Block8x1(w + o * n, x, y + o, n);
        }
        else
        {
            // Four weight rows at a time, a tile of their inputs at a time: the tile (4 × 2 KB) stays in the L1 cache
            // while every group of input rows runs over it, each group's 16 chains carried from tile to tile.
            int groups = (rows + 3) / 4;
            var acc = stackalloc Vector256<float>[16 * groups];
            long whole = n & ~7L;
            for (; o + 4 <= end; o += 4)
            {
                new Span<Vector256<float>>(acc, 16 * groups).Clear();
                for (long k0 = 0; k0 < whole; k0 += Tile)
                {
                    long k1 = Math.Min(k0 + Tile, whole);
                    for (int g = 0; g < groups; g++)
                    {
                        int r = 4 * g, count = Math.Min(4, rows - r);
                        if (count == 4) Block4x4(w + o * n, x + r * n, n, k0, k1, acc + 16 * g);
                        else for (int j = 0; j < count; j++) Block4x1(w + o * n, x + (r + j) * n, n, k0, k1, acc + 16 * g + 4 * j);
                    }
                }
                for (int r = 0; r < rows; r++)
                    for (int k = 0; k < 4; k++)
                        y[r * outF + o + k] = Finish(acc[16 * (r / 4) + 4 * (r % 4) + k], w + (o + k) * n, x + r * n, n);
            }
        }
        for (; o < end; o++)
            for (int r = 0; r < rows; r++) y[r * outF + o] = Chain(w + o * n, x + r * n, n);
        if (bias is null) return;
        for (int r = 0; r < rows; r++)
            for (long k = start; k < end; k++) y[r * outF + k] += bias[k];
    }

    /// <summary>Floats of each weight row per tile in the several-row path.</summary>
    private const int Tile = 512;

    /// <summary>The lane sum of one chain, then the tail past the last whole chunk (shared by every block).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Finish(Vector256<float> acc, float* w, float* x, long n)
    {
        float sum = Vector256.Sum(acc);
        for (long i = n & ~7L; i < n; i++) sum += w[i] * x[i];
        return sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> L(float* p) => Avx.LoadVector256(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> F(Vector256<float> a, Vector256<float> b, Vector256<float> acc) => Fma.MultiplyAdd(a, b, acc);

    /// <summary>One product alone.</summary>
    private static float Chain(float* w, float* x, long n)
    {
        var acc = Vector256<float>.Zero;
        for (long i = 0; i + 8 <= n; i += 8) acc = F(L(w + i), L(x + i), acc);
        return Finish(acc, w, x, n);
    }

    /// <summary>Eight weight rows with one input row: y[0..8].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Block8x1(float* w, float* x, float* y, long n)
    {
        float* w0 = w, w1 = w + n, w2 = w + 2 * n, w3 = w + 3 * n, w4 = w + 4 * n, w5 = w + 5 * n, w6 = w + 6 * n, w7 = w + 7 * n;
        var a0 = Vector256<float>.Zero; var a1 = a0; var a2 = a0; var a3 = a0; var a4 = a0; var a5 = a0; var a6 = a0; var a7 = a0;
        for (long i = 0; i + 8 <= n; i += 8)
        {
            if ((i & 15) == 0)
            {
                // One cache line ahead on each of the eight streams per 16 floats.
                long ahead = i + PrefetchDistance / sizeof(float);
                Sse.Prefetch0(w0 + ahead); Sse.Prefetch0(w1 + ahead); Sse.Prefetch0(w2 + ahead); Sse.Prefetch0(w3 + ahead);
                Sse.Prefetch0(w4 + ahead); Sse.Prefetch0(w5 + ahead); Sse.Prefetch0(w6 + ahead); Sse.Prefetch0(w7 + ahead);
            }
            var xv = L(x + i);
            a0 = F(L(w0 + i), xv, a0); a1 = F(L(w1 + i), xv, a1); a2 = F(L(w2 + i), xv, a2); a3 = F(L(w3 + i), xv, a3);
            a4 = F(L(w4 + i), xv, a4); a5 = F(L(w5 + i), xv, a5); a6 = F(L(w6 + i), xv, a6); a7 = F(L(w7 + i), xv, a7);
        }
        y[0] = Finish(a0, w0, x, n); y[1] = Finish(a1, w1, x, n); y[2] = Finish(a2, w2, x, n); y[3] = Finish(a3, w3, x, n);
        y[4] = Finish(a4, w4, x, n); y[5] = Finish(a5, w5, x, n); y[6] = Finish(a6, w6, x, n); y[7] = Finish(a7, w7, x, n);
    }

    /// <summary>
    /// Four weight rows with one input row over chunks [k0, k1): the chains a[0..4] (weight row k) continue from and
    /// return to <paramref name="a"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Block4x1(float* w, float* x, long n, long k0, long k1, Vector256<float>* a)
    {
        float* w0 = w, w1 = w + n, w2 = w + 2 * n, w3 = w + 3 * n;
        var a0 = a[0]; var a1 = a[1]; var a2 = a[2]; var a3 = a[3];
        for (long i = k0; i < k1; i += 8)
        {
            var xv = L(x + i);
            a0 = F(L(w0 + i), xv, a0); a1 = F(L(w1 + i), xv, a1); a2 = F(L(w2 + i), xv, a2); a3 = F(L(w3 + i), xv, a3);
        }
        a[0] = a0; a[1] = a1; a[2] = a2; a[3] = a3;
    }

    /// <summary>
    /// Four weight rows with four input rows over chunks [k0, k1): 16 chains, a[4·r + k] for input row r and weight
    /// row k, continued from and returned to <paramref name="a"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Block4x4(float* w, float* x, long n, long k0, long k1, Vector256<float>* a)
    {
        float* w0 = w, w1 = w + n, w2 = w + 2 * n, w3 = w + 3 * n;
        float* x0 = x, x1 = x + n, x2 = x + 2 * n, x3 = x + 3 * n;
        var a00 = a[0]; var a10 = a[1]; var a20 = a[2]; var a30 = a[3];
        var a01 = a[4]; var a11 = a[5]; var a21 = a[6]; var a31 = a[7];
        var a02 = a[8]; var a12 = a[9]; var a22 = a[10]; var a32 = a[11];
        var a03 = a[12]; var a13 = a[13]; var a23 = a[14]; var a33 = a[15];
        for (long i = k0; i < k1; i += 8)
        {
            if ((i & 15) == 0)
            {
                long ahead = i + PrefetchDistance / sizeof(float);
                Sse.Prefetch0(w0 + ahead); Sse.Prefetch0(w1 + ahead); Sse.Prefetch0(w2 + ahead); Sse.Prefetch0(w3 + ahead);
            }
            var v0 = L(w0 + i); var v1 = L(w1 + i); var v2 = L(w2 + i); var v3 = L(w3 + i);
            var u = L(x0 + i);
            a00 = F(v0, u, a00); a10 = F(v1, u, a10); a20 = F(v2, u, a20); a30 = F(v3, u, a30);
            u = L(x1 + i);
            a01 = F(v0, u, a01); a11 = F(v1, u, a11); a21 = F(v2, u, a21); a31 = F(v3, u, a31);
            u = L(x2 + i);
            a02 = F(v0, u, a02); a12 = F(v1, u, a12); a22 = F(v2, u, a22); a32 = F(v3, u, a32);
            u = L(x3 + i);
            a03 = F(v0, u, a03); a13 = F(v1, u, a13); a23 = F(v2, u, a23); a33 = F(v3, u, a33);
        }
        a[0] = a00; a[1] = a10; a[2] = a20; a[3] = a30;
        a[4] = a01; a[5] = a11; a[6] = a21; a[7] = a31;
        a[8] = a02; a[9] = a12; a[10] = a22; a[11] = a32;
        a[12] = a03; a[13] = a13; a[14] = a23; a[15] = a33;
    }
}
