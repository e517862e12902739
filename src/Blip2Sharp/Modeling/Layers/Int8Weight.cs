using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static TorchSharp.torch;

namespace Blip2Sharp.Modeling.Layers;

/// <summary>
/// Weight-only int8 for CPU decoding: each output row of a Linear weight [O, I] stored as int8 with one float scale
/// (symmetric, max |w| → 127). A product with one or a few rows quantizes the activations per block of 32 to int8 and
/// runs an AVX2 integer dot-product kernel over the int8 weights (a quarter of the bytes float32 streams); larger
/// inputs (the prompt prefill) dequantize the weight and use the float32 GEMM.
/// </summary>
public sealed unsafe class Int8Weight : IDisposable
{
    private const int Block = 32;
    /// <summary>
    /// How far ahead of the kernel the weights are prefetched, in bytes. The kernel computes for ~2.5 × as long per byte
    /// as the fp32 one, and left to the hardware prefetcher alone too few lines were in flight: it streamed 42 GB/s where
    /// a plain read got 45; with 4 KB of software prefetch 47 (mean of 12 paired rounds over 40 × 10240×2560 int8,
    /// 2 threads; 512 B: 42, 1 KB: 43, 2 KB: 45, 8–32 KB: 45–47). Prefetches never fault, so running past the end of
    /// the weight is harmless.
    /// </summary>
    private const int PrefetchDistance = 4096;
    private readonly sbyte* _q;
    private readonly float[] _rowScale;
    public long Rows { get; }
    public long Columns { get; }
    /// <summary>Columns rounded up to whole blocks of 32 (zero padding, which adds nothing to a dot product).</summary>
    private readonly long _padded;
    /// <summary>
    /// AVX-VNNI (vpdpbusd) multiplies unsigned by signed bytes, four products summed straight into int32: the weights
    /// are then stored offset by 128 (w + 128, the sign bit flipped), and Σ (w + 128)·x = Σ w·x + 128·Σ x is corrected
    /// once per input row. Without VNNI the weights stay signed for the AVX2 kernel.
    /// </summary>
    private readonly bool _vnni;

    public Int8Weight(Tensor weight) : this(weight, AvxVnni.IsSupported) { }

    /// <summary><paramref name="vnni"/> false forces the AVX2 kernel (tests run both on a VNNI machine).</summary>
    internal Int8Weight(Tensor weight, bool vnni)
    {
        _vnni = vnni && AvxVnni.IsSupported;
        if (weight.dim() != 2) throw new ArgumentException("int8 quantization takes a 2-D weight.");
        Rows = weight.shape[0];
        Columns = weight.shape[1];
        _padded = (Columns + Block - 1) / Block * Block;
        _q = (sbyte*)NativeMemory.AlignedAlloc((nuint)(Rows * _padded), 64);
        NativeMemory.Clear(_q, (nuint)(Rows * _padded));
        _rowScale = new float[Rows];
        using var scope = NewDisposeScope();
        var w = weight.detach().to(ScalarType.Float32).cpu().contiguous();
        var scale = w.abs().amax([1]).clamp_min(1e-12f) / 127f;                  // [O]
        var q = (w / scale.unsqueeze(1)).round().clamp(-127, 127).to(ScalarType.Int8).contiguous();
        scale.data<float>().CopyTo(_rowScale);
        var bytes = q.bytes;
        fixed (byte* src = bytes)
        {
            for (long r = 0; r < Rows; r++) Buffer.MemoryCopy(src + r * Columns, _q + r * _padded, Columns, Columns);
        }
        if (_vnni) FlipSigns((byte*)_q, Rows * _padded);
    }

    /// <summary>b ^ 0x80 over n bytes: signed ↔ offset-by-128 unsigned.</summary>
    private static void FlipSigns(byte* p, long n)
    {
        for (long i = 0; i < n; i++) p[i] ^= 0x80;
    }

    public long Bytes => Rows * _padded + Rows * 4;

    /// <summary>The float32 weight this represents (for large inputs and for measuring the error).</summary>
    public Tensor Dequantize()
    {
        var q = empty([Rows, Columns], ScalarType.Int8);
        fixed (byte* dst = q.bytes)
        {
            for (long r = 0; r < Rows; r++) Buffer.MemoryCopy(_q + r * _padded, dst + r * Columns, Columns, Columns);
            if (_vnni) FlipSigns(dst, Rows * Columns);
        }
        using var s = tensor(_rowScale).unsqueeze(1);
        using var f = q.to(ScalarType.Float32);
        q.Dispose();
        return f * s;
    }

    /// <summary>x [..., I] → x Wᵀ + b [..., O].</summary>
    public Tensor Linear(Tensor x, Tensor? bias)
    {
        long rows = x.NumberOfElements / Columns;
        if (rows > FloatGemv.MaxRows || !Avx2.IsSupported || !Fma.IsSupported || x.device_type != TorchSharp.DeviceType.CPU)
        {
            using var w = Dequantize();
            return nn.functional.linear(x, w, bias);
        }
        using var scope = NewDisposeScope();
        var input = FloatGemv.Dense(x.to(ScalarType.Float32));
        var output = empty([rows, Rows], ScalarType.Float32);
        int blocks = (int)(_padded / Block);
        var xq = new sbyte[rows * _padded];
        var xs = new float[rows * blocks];
        var offset = new float[rows];
        fixed (byte* inBytes = input.bytes)
        fixed (byte* outBytes = output.bytes)
        fixed (sbyte* xqp = xq)
        fixed (float* xsp = xs)
        {
            for (long r = 0; r < rows; r++)
            {
                float shift = QuantizeActivations((float*)inBytes + r * Columns, Columns, xqp + r * _padded, xsp + r * blocks, blocks);
                // VNNI: the weights are offset by 128, which adds 128·Σ_b xs[b]·Σ_i xq[b, i] to every output of the row.
                offset[r] = _vnni ? shift : 0f;
            }
            sbyte* xqPtr = xqp; float* xsPtr = xsp; float* outPtr = (float*)outBytes;
            DecodeThreads.ForRanges(Rows, (start, end) =>
            {
                for (long o = start; o < end; o++)
                {
                    sbyte* wRow = _q + o * _padded;
                    for (long r = 0; r < rows; r++)
                        outPtr[r * Rows + o] = _rowScale[o] * (_vnni
                            ? Dot<VnniProduct>((byte*)wRow, xqPtr + r * _padded, xsPtr + r * blocks, blocks) - offset[r]
                            : Dot<Avx2Product>((byte*)wRow, xqPtr + r * _padded, xsPtr + r * blocks, blocks));
                }
            });
        }
        if (bias is not null) output.add_(bias.to(ScalarType.Float32));
        long[] shape = [.. x.shape[..^1], Rows];
        return (x.dtype == ScalarType.Float32 ? output.view(shape) : output.view(shape).to(x.dtype)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// One row of n activations → int8 per block of 32 (symmetric, max |x| → 127; columns past n are zero), the
    /// blocks' scales, and 128·Σ_b scale[b]·Σ_i q[b, i] (what the VNNI kernel's offset weights add). AVX2 for whole
    /// blocks: the conversion rounds half to even, as MathF.Round, so both paths give the same bytes.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float QuantizeActivations(float* x, long n, sbyte* q, float* scales, int blocks)
    {
        float offset = 0;
        var magnitude = Vector256.Create(0x7FFFFFFF).AsSingle();
        var order = Vector256.Create(0, 4, 1, 5, 2, 6, 3, 7);
        for (int b = 0; b < blocks; b++)
        {
            long o = (long)b * Block;
            float s;
            int sum = 0;
            if (o + Block <= n)
            {
                var v0 = Avx.LoadVector256(x + o);
                var v1 = Avx.LoadVector256(x + o + 8);
                var v2 = Avx.LoadVector256(x + o + 16);
                var v3 = Avx.LoadVector256(x + o + 24);
                var m = Avx.Max(Avx.Max(Avx.And(v0, magnitude), Avx.And(v1, magnitude)), Avx.Max(Avx.And(v2, magnitude), Avx.And(v3, magnitude)));
                var m4 = Sse.Max(m.GetLower(), m.GetUpper());
                m4 = Sse.Max(m4, Sse.Shuffle(m4, m4, 0b01_00_11_10));
                m4 = Sse.Max(m4, Sse.Shuffle(m4, m4, 0b10_11_00_01));
                s = m4.ToScalar() / 127f;
                var inv = Vector256.Create(s > 0 ? 1f / s : 0f);
                var i0 = Avx.ConvertToVector256Int32(Avx.Multiply(v0, inv));
                var i1 = Avx.ConvertToVector256Int32(Avx.Multiply(v1, inv));
                var i2 = Avx.ConvertToVector256Int32(Avx.Multiply(v2, inv));
                var i3 = Avx.ConvertToVector256Int32(Avx.Multiply(v3, inv));
                sum = Vector256.Sum(Avx2.Add(Avx2.Add(i0, i1), Avx2.Add(i2, i3)));
                // Packing works per 128-bit lane: the dwords come out as i0[0..3] i1[0..3] i2[0..3] i3[0..3] | i0[4..7] …
                var packed = Avx2.PackSignedSaturate(Avx2.PackSignedSaturate(i0, i1), Avx2.PackSignedSaturate(i2, i3));
                Avx.Store(q + o, Avx2.PermuteVar8x32(packed.AsInt32(), order).AsSByte());
            }
            else
            {
                float amax = 0;
                for (long i = o; i < n; i++) amax = MathF.Max(amax, MathF.Abs(x[i]));
                s = amax / 127f;
                float inv = s > 0 ? 1f / s : 0f;
                for (int i = 0; i < Block; i++)
                {
                    sbyte v = o + i < n ? (sbyte)Math.Clamp(MathF.Round(x[o + i] * inv), -127, 127) : (sbyte)0;
                    q[o + i] = v;
                    sum += v;
                }
            }
            scales[b] = s;
            offset += 128f * s * sum;
        }
        return offset;
    }

    /// <summary>The integer product of one block of 32 weights and 32 activations, as 8 float partial sums.</summary>
    private interface IBlockProduct
    {
        static abstract Vector256<float> Of(byte* w, sbyte* x);
    }

    /// <summary>AVX2, signed weights: |w| (unsigned) × sign-adjusted x → int16 pairs → int32 → float (five instructions).</summary>
    private struct Avx2Product : IBlockProduct
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Of(byte* w, sbyte* x)
        {
            var wv = Avx.LoadVector256((sbyte*)w);
            var xv = Avx.LoadVector256(x);
            var pairs = Avx2.MultiplyAddAdjacent(Avx2.Abs(wv), Avx2.Sign(xv, wv));              // 16 × int16
            return Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(pairs, Vector256.Create((short)1))); // 8 × int32 → float
        }
    }

    /// <summary>AVX-VNNI, weights offset by 128: vpdpbusd sums four unsigned × signed products straight into int32.</summary>
    private struct VnniProduct : IBlockProduct
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Of(byte* w, sbyte* x) =>
            Avx.ConvertToVector256Single(AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, Avx.LoadVector256(w), Avx.LoadVector256(x)));
    }

    /// <summary>Σ_blocks scale_x[b] · (block product b): four independent accumulators keep the FMA latency off the
    /// critical path. Generic over the block product so that the JIT compiles one loop per kernel.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Dot<TProduct>(byte* w, sbyte* x, float* xs, int blocks) where TProduct : struct, IBlockProduct
    {
        var acc0 = Vector256<float>.Zero;
        var acc1 = Vector256<float>.Zero;
        var acc2 = Vector256<float>.Zero;
        var acc3 = Vector256<float>.Zero;
        int b = 0;
        for (; b + 4 <= blocks; b += 4)
        {
            Sse.Prefetch0(w + b * Block + PrefetchDistance);                      // the four blocks' two cache lines
            Sse.Prefetch0(w + b * Block + PrefetchDistance + 64);
            acc0 = Fma.MultiplyAdd(TProduct.Of(w + b * Block, x + b * Block), Vector256.Create(xs[b]), acc0);
            acc1 = Fma.MultiplyAdd(TProduct.Of(w + (b + 1) * Block, x + (b + 1) * Block), Vector256.Create(xs[b + 1]), acc1);
            acc2 = Fma.MultiplyAdd(TProduct.Of(w + (b + 2) * Block, x + (b + 2) * Block), Vector256.Create(xs[b + 2]), acc2);
            acc3 = Fma.MultiplyAdd(TProduct.Of(w + (b + 3) * Block, x + (b + 3) * Block), Vector256.Create(xs[b + 3]), acc3);
        }
        for (; b < blocks; b++) acc0 = Fma.MultiplyAdd(TProduct.Of(w + b * Block, x + b * Block), Vector256.Create(xs[b]), acc0);
        return Vector256.Sum(Avx.Add(Avx.Add(acc0, acc1), Avx.Add(acc2, acc3)));
    }

    public void Dispose() => NativeMemory.AlignedFree(_q);
}
