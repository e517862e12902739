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
    private readonly sbyte* _q;
    private readonly float[] _rowScale;
    public long Rows { get; }
    public long Columns { get; }
    /// <summary>Columns rounded up to whole blocks of 32 (zero padding, which adds nothing to a dot product).</summary>
    private readonly long _padded;

    public Int8Weight(Tensor weight)
    {
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
    }

    public long Bytes => Rows * _padded + Rows * 4;

    /// <summary>The float32 weight this represents (for large inputs and for measuring the error).</summary>
    public Tensor Dequantize()
    {
        var q = empty([Rows, Columns], ScalarType.Int8);
        fixed (byte* dst = q.bytes)
        {
            for (long r = 0; r < Rows; r++) Buffer.MemoryCopy(_q + r * _padded, dst + r * Columns, Columns, Columns);
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
        if (rows > 4 || !Avx2.IsSupported || !Fma.IsSupported || x.device_type != TorchSharp.DeviceType.CPU)
        {
            using var w = Dequantize();
            return nn.functional.linear(x, w, bias);
        }
        using var scope = NewDisposeScope();
        var input = x.to(ScalarType.Float32).contiguous().view(rows, Columns);
        var output = empty([rows, Rows], ScalarType.Float32);
        int blocks = (int)(_padded / Block);
        var xq = new sbyte[rows * _padded];
        var xs = new float[rows * blocks];
        var inData = new float[rows * _padded];
        var flat = input.data<float>().ToArray();
        for (long r = 0; r < rows; r++) Array.Copy(flat, r * Columns, inData, r * _padded, Columns);
        for (long r = 0; r < rows; r++) QuantizeActivations(inData, r * _padded, xq, xs, r * blocks, blocks);
        var outData = new float[rows * Rows];
        int threads = Math.Max(1, TorchSharp.torch.get_num_threads());
        long chunk = (Rows + threads - 1) / threads;
        fixed (sbyte* xqp = xq)
        fixed (float* xsp = xs)
        fixed (float* outp = outData)
        {
            sbyte* xqPtr = xqp; float* xsPtr = xsp; float* outPtr = outp;
            Parallel.For(0, threads, t =>
            {
                long start = t * chunk, end = Math.Min(Rows, start + chunk);
                for (long o = start; o < end; o++)
                {
                    sbyte* wRow = _q + o * _padded;
                    for (long r = 0; r < rows; r++)
                        outPtr[r * Rows + o] = _rowScale[o] * Dot(wRow, xqPtr + r * _padded, xsPtr + r * blocks, blocks);
                }
            });
        }
        outData.AsSpan().CopyTo(MemoryMarshal.Cast<byte, float>(output.bytes));
        if (bias is not null) output.add_(bias.to(ScalarType.Float32));
        long[] shape = [.. x.shape[..^1], Rows];
        return output.view(shape).to(x.dtype).MoveToOuterDisposeScope();
    }

    private static void QuantizeActivations(float[] x, long offset, sbyte[] q, float[] scales, long scaleOffset, int blocks)
    {
        for (int b = 0; b < blocks; b++)
        {
            long o = offset + (long)b * Block;
            float amax = 0;
            for (int i = 0; i < Block; i++) amax = MathF.Max(amax, MathF.Abs(x[o + i]));
            float s = amax / 127f;
            float inv = s > 0 ? 1f / s : 0f;
            scales[scaleOffset + b] = s;
            for (int i = 0; i < Block; i++) q[o + i] = (sbyte)Math.Clamp(MathF.Round(x[o + i] * inv), -127, 127);
        }
    }

    /// <summary>Σ_blocks scale_x[b] · Σ_i w[i]·x[i] with AVX2: |w| (unsigned) × sign-adjusted x → int16 pairs → int32 → float.
    /// Four independent accumulators keep the FMA latency off the critical path.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Dot(sbyte* w, sbyte* x, float* xs, int blocks)
    {
        var acc0 = Vector256<float>.Zero;
        var acc1 = Vector256<float>.Zero;
        var acc2 = Vector256<float>.Zero;
        var acc3 = Vector256<float>.Zero;
        var ones = Vector256.Create((short)1);
        int b = 0;
        for (; b + 4 <= blocks; b += 4)
        {
            acc0 = Fma.MultiplyAdd(Block32(w + b * Block, x + b * Block, ones), Vector256.Create(xs[b]), acc0);
            acc1 = Fma.MultiplyAdd(Block32(w + (b + 1) * Block, x + (b + 1) * Block, ones), Vector256.Create(xs[b + 1]), acc1);
            acc2 = Fma.MultiplyAdd(Block32(w + (b + 2) * Block, x + (b + 2) * Block, ones), Vector256.Create(xs[b + 2]), acc2);
            acc3 = Fma.MultiplyAdd(Block32(w + (b + 3) * Block, x + (b + 3) * Block, ones), Vector256.Create(xs[b + 3]), acc3);
        }
        for (; b < blocks; b++) acc0 = Fma.MultiplyAdd(Block32(w + b * Block, x + b * Block, ones), Vector256.Create(xs[b]), acc0);
        return Vector256.Sum(Avx.Add(Avx.Add(acc0, acc1), Avx.Add(acc2, acc3)));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Block32(sbyte* w, sbyte* x, Vector256<short> ones)
    {
        var wv = Avx.LoadVector256(w);
        var xv = Avx.LoadVector256(x);
        var pairs = Avx2.MultiplyAddAdjacent(Avx2.Abs(wv), Avx2.Sign(xv, wv)); // 16 × int16
        return Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(pairs, ones)); // 8 × int32 → float
    }

    public void Dispose() => NativeMemory.AlignedFree(_q);
}
