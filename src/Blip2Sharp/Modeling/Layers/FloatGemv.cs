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
                if (Wide512) Products<W512>(wp, xp, yp, bArr, inF, outF, (int)rows, start, end);
                else Products<W256x2>(wp, xp, yp, bArr, inF, outF, (int)rows, start, end);
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

    /// <summary>
    /// 512-bit FMAs where the CPU has AVX-512 (CPUs that run them at full width compute the several-row products
    /// faster: `bench gemv-rows --cached`); otherwise the same lanes as two 256-bit halves, which computes the same bits.
    /// Tests and `bench gemv-rows` switch it off to compare both.
    /// </summary>
    public static bool Wide512
    {
        get => _wide512;
        set => _wide512 = value && Avx512F.IsSupported;
    }

    private static bool _wide512 = Avx512F.IsSupported;

    /// <summary>
    /// y[r, o] = w[o] · x[r] + b[o] for output rows [start, end) and every input row. Each product is one chain of
    /// FMAs over 16-float chunks in order (16 lanes), its lanes summed as Σ(low half + high half), then the tail: the
    /// same operations in the same order whatever else is computed beside it, so a row's outputs are bit for bit the
    /// same alone or in a batch. The blocking only decides how many chains run side by side: one input row streams
    /// eight weight rows at once (memory bound: enough loads in flight); several take four weight rows × four input
    /// rows (16 chains in registers; each weight chunk loaded once for four rows, each input chunk once for four
    /// weight rows: compute bound), a tile of the inputs at a time so that the four weight rows' tile stays in L1
    /// while every group of input rows runs over it.
    /// </summary>
    private static void Products<T>(float* w, float* x, float* y, float[]? bias, long n, long outF, int rows, long start, long end)
        where T : unmanaged, IWide<T>
    {
        long o = start;
        if (rows == 1)
        {
            for (; o + 8 <= end; o += 8) Block8x1<T>(w + o * n, x, y + o, n);
        }
        else
        {
            int groups = (rows + 3) / 4;
            var acc = stackalloc T[16 * groups];
            long whole = n & ~15L;
            for (; o + 4 <= end; o += 4)
            {
                for (int k = 0; k < 16 * groups; k++) acc[k] = T.Zero;
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
            for (int r = 0; r < rows; r++) y[r * outF + o] = Chain<T>(w + o * n, x + r * n, n);
        if (bias is null) return;
        for (int r = 0; r < rows; r++)
            for (long k = start; k < end; k++) y[r * outF + k] += bias[k];
    }

    /// <summary>Floats of each weight row per tile in the several-row path.</summary>
    private const int Tile = 512;

    /// <summary>16 float lanes: one AVX-512 register, or two AVX2 halves computing the same bits.</summary>
    internal interface IWide<TSelf> where TSelf : unmanaged, IWide<TSelf>
    {
        static abstract TSelf Zero { get; }
        static abstract TSelf Load(float* p);
        static abstract TSelf Fma(TSelf a, TSelf b, TSelf acc);
        /// <summary>Σ of the lanes as Vector256.Sum(low half + high half).</summary>
        static abstract float Sum(TSelf v);
    }

    internal readonly struct W512(Vector512<float> v) : IWide<W512>
    {
        private readonly Vector512<float> _v = v;
        public static W512 Zero => default;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static W512 Load(float* p) => new(Avx512F.LoadVector512(p));
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static W512 Fma(W512 a, W512 b, W512 acc) => new(Avx512F.FusedMultiplyAdd(a._v, b._v, acc._v));
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Sum(W512 v) => Vector256.Sum(Avx.Add(v._v.GetLower(), v._v.GetUpper()));
    }

    internal readonly struct W256x2(Vector256<float> low, Vector256<float> high) : IWide<W256x2>
    {
        private readonly Vector256<float> _low = low, _high = high;
        public static W256x2 Zero => default;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static W256x2 Load(float* p) => new(Avx.LoadVector256(p), Avx.LoadVector256(p + 8));
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static W256x2 Fma(W256x2 a, W256x2 b, W256x2 acc) =>
            new(System.Runtime.Intrinsics.X86.Fma.MultiplyAdd(a._low, b._low, acc._low),
                System.Runtime.Intrinsics.X86.Fma.MultiplyAdd(a._high, b._high, acc._high));
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Sum(W256x2 v) => Vector256.Sum(Avx.Add(v._low, v._high));
    }

    /// <summary>The lane sum of one chain, then the tail past the last whole chunk (shared by every block).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Finish<T>(T acc, float* w, float* x, long n) where T : unmanaged, IWide<T>
    {
        float sum = T.Sum(acc);
        for (long i = n & ~15L; i < n; i++) sum += w[i] * x[i];
        return sum;
    }

    /// <summary>One product alone.</summary>
    private static float Chain<T>(float* w, float* x, long n) where T : unmanaged, IWide<T>
    {
        var acc = T.Zero;
        for (long i = 0; i + 16 <= n; i += 16) acc = T.Fma(T.Load(w + i), T.Load(x + i), acc);
        return Finish(acc, w, x, n);
    }

    /// <summary>Eight weight rows with one input row: y[0..8].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Block8x1<T>(float* w, float* x, float* y, long n) where T : unmanaged, IWide<T>
    {
        float* w0 = w, w1 = w + n, w2 = w + 2 * n, w3 = w + 3 * n, w4 = w + 4 * n, w5 = w + 5 * n, w6 = w + 6 * n, w7 = w + 7 * n;
        T a0 = T.Zero, a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        for (long i = 0; i + 16 <= n; i += 16)
        {
            // One cache line ahead on each of the eight streams per 16 floats.
            long ahead = i + PrefetchDistance / sizeof(float);
            Sse.Prefetch0(w0 + ahead); Sse.Prefetch0(w1 + ahead); Sse.Prefetch0(w2 + ahead); Sse.Prefetch0(w3 + ahead);
            Sse.Prefetch0(w4 + ahead); Sse.Prefetch0(w5 + ahead); Sse.Prefetch0(w6 + ahead); Sse.Prefetch0(w7 + ahead);
            var xv = T.Load(x + i);
            a0 = T.Fma(T.Load(w0 + i), xv, a0); a1 = T.Fma(T.Load(w1 + i), xv, a1);
            a2 = T.Fma(T.Load(w2 + i), xv, a2); a3 = T.Fma(T.Load(w3 + i), xv, a3);
            a4 = T.Fma(T.Load(w4 + i), xv, a4); a5 = T.Fma(T.Load(w5 + i), xv, a5);
            a6 = T.Fma(T.Load(w6 + i), xv, a6); a7 = T.Fma(T.Load(w7 + i), xv, a7);
        }
        y[0] = Finish(a0, w0, x, n); y[1] = Finish(a1, w1, x, n); y[2] = Finish(a2, w2, x, n); y[3] = Finish(a3, w3, x, n);
        y[4] = Finish(a4, w4, x, n); y[5] = Finish(a5, w5, x, n); y[6] = Finish(a6, w6, x, n); y[7] = Finish(a7, w7, x, n);
    }

    /// <summary>
    /// Four weight rows with one input row over chunks [k0, k1): the chains a[0..4] (weight row k) continue from and
    /// return to <paramref name="a"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Block4x1<T>(float* w, float* x, long n, long k0, long k1, T* a) where T : unmanaged, IWide<T>
    {
        float* w0 = w, w1 = w + n, w2 = w + 2 * n, w3 = w + 3 * n;
        T a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];
        for (long i = k0; i < k1; i += 16)
        {
            var xv = T.Load(x + i);
            a0 = T.Fma(T.Load(w0 + i), xv, a0); a1 = T.Fma(T.Load(w1 + i), xv, a1);
            a2 = T.Fma(T.Load(w2 + i), xv, a2); a3 = T.Fma(T.Load(w3 + i), xv, a3);
        }
        a[0] = a0; a[1] = a1; a[2] = a2; a[3] = a3;
    }

    /// <summary>
    /// Four weight rows with four input rows over chunks [k0, k1): 16 chains, a[4·r + k] for input row r and weight
    /// row k, continued from and returned to <paramref name="a"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Block4x4<T>(float* w, float* x, long n, long k0, long k1, T* a) where T : unmanaged, IWide<T>
    {
        float* w0 = w, w1 = w + n, w2 = w + 2 * n, w3 = w + 3 * n;
        float* x0 = x, x1 = x + n, x2 = x + 2 * n, x3 = x + 3 * n;
        T a00 = a[0], a10 = a[1], a20 = a[2], a30 = a[3];
        T a01 = a[4], a11 = a[5], a21 = a[6], a31 = a[7];
        T a02 = a[8], a12 = a[9], a22 = a[10], a32 = a[11];
        T a03 = a[12], a13 = a[13], a23 = a[14], a33 = a[15];
        for (long i = k0; i < k1; i += 16)
        {
            long ahead = i + PrefetchDistance / sizeof(float);
            Sse.Prefetch0(w0 + ahead); Sse.Prefetch0(w1 + ahead); Sse.Prefetch0(w2 + ahead); Sse.Prefetch0(w3 + ahead);
            var v0 = T.Load(w0 + i); var v1 = T.Load(w1 + i); var v2 = T.Load(w2 + i); var v3 = T.Load(w3 + i);
            var u = T.Load(x0 + i);
            a00 = T.Fma(v0, u, a00); a10 = T.Fma(v1, u, a10); a20 = T.Fma(v2, u, a20); a30 = T.Fma(v3, u, a30);
            u = T.Load(x1 + i);
            a01 = T.Fma(v0, u, a01); a11 = T.Fma(v1, u, a11); a21 = T.Fma(v2, u, a21); a31 = T.Fma(v3, u, a31);
            u = T.Load(x2 + i);
            a02 = T.Fma(v0, u, a02); a12 = T.Fma(v1, u, a12); a22 = T.Fma(v2, u, a22); a32 = T.Fma(v3, u, a32);
            u = T.Load(x3 + i);
            a03 = T.Fma(v0, u, a03); a13 = T.Fma(v1, u, a13); a23 = T.Fma(v2, u, a23); a33 = T.Fma(v3, u, a33);
        }
        a[0] = a00; a[1] = a10; a[2] = a20; a[3] = a30;
        a[4] = a01; a[5] = a11; a[6] = a21; a[7] = a31;
        a[8] = a02; a[9] = a12; a[10] = a22; a[11] = a32;
        a[12] = a03; a[13] = a13; a[14] = a23; a[15] = a33;
    }
}
