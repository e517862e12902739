using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static TorchSharp.torch;

namespace Blip2Sharp.Modeling.Layers;

/// <summary>
/// Attention of one new position, the shape of every decoding step, in one pass of managed code: self-attention over
/// the KV cache (it writes the position's keys and values into the cache first; OPT, T5's decoder) or cross-attention
/// over fixed keys and values (T5), softmax(q·Kᵀ·scaling + mask)·V for every row and head. The same work as libtorch's
/// dozen small ops (views, two cache copies, two batched products, mask add, softmax, transpose, reshape), but those
/// ops run right after the layer's weights have streamed through the caches, and each pays for that: on
/// blip2-opt-2.7b they took ~3 ms per token for 32 layers when warm and ~8 ms when the caches had just been flushed as
/// decoding flushes them, ~10 % of an int8 step.
/// </summary>
public static unsafe class DecodeAttention
{
    /// <summary>Off in tests that compare this path with libtorch's.</summary>
    internal static bool Enabled { get; set; } = true;

    /// <summary>How many times the managed path ran on this thread (tests check that a model takes it).</summary>
    [ThreadStatic] internal static long Calls;

    /// <summary>
    /// One new position (hidden [B, 1, E]) in inference, float32 on the CPU, an additive mask [B or 1, H or 1, 1, S]
    /// over the cached positions and the new one, and a cache that holds float32 CPU buffers for B rows if any.
    /// </summary>
    public static bool Applies(Tensor hidden, Tensor mask, LayerKvCache cache, int heads) =>
        OnePosition(hidden) && BiasFits(mask, hidden.shape[0], heads, cache.Length + 1) && cache.CanTakeOne(hidden.shape[0], ScalarType.Float32);

    /// <summary>This path is on and the CPU and autograd allow it; hidden [B, 1, E] float32 on the CPU.</summary>
    private static bool OnePosition(Tensor hidden) =>
        Enabled && Avx2.IsSupported && Fma.IsSupported && !is_grad_enabled()
        && hidden.dim() == 3 && hidden.shape[1] == 1 && hidden.dtype == ScalarType.Float32 && hidden.device_type == TorchSharp.DeviceType.CPU;

    /// <summary>An additive mask or bias [B or 1, H or 1, 1, length], float32 on the CPU.</summary>
    private static bool BiasFits(Tensor bias, long batch, int heads, long length) =>
        bias.dim() == 4 && bias.dtype == ScalarType.Float32 && bias.device_type == TorchSharp.DeviceType.CPU
        && (bias.shape[0] == 1 || bias.shape[0] == batch) && (bias.shape[1] == 1 || bias.shape[1] == heads)
        && bias.shape[2] == 1 && bias.shape[3] == length;

    /// <summary>
    /// q, k, v [B, 1, E] (heads side by side, q not yet scaled) → the attention context [B, 1, E]; k and v are appended
    /// to <paramref name="cache"/>.
    /// </summary>
    public static Tensor Forward(Tensor q, Tensor k, Tensor v, Tensor mask, LayerKvCache cache, int heads, double scaling)
    {
        int headDim = (int)(q.shape[2] / heads);
        var (keys, values, position) = cache.TakeOne(q.shape[0], heads, headDim);  // [B, H, capacity, Dh]; the new one at position
        using var kd = FloatGemv.Dense(k);
        using var vd = FloatGemv.Dense(v);
        return Attend(q, keys, values, (int)position + 1, (kd, vd, position), mask, heads, scaling);
    }

    /// <summary>
    /// Cross-attention of one position (q [B, 1, E]) over fixed keys and values [B, H, S, Dh] (contiguous, float32 on the
    /// CPU, as <c>T5Attention.ProjectKeyValue</c> makes them), with an additive bias [B or 1, H or 1, 1, S].
    /// </summary>
    public static bool AppliesToCross(Tensor hidden, Tensor bias, Tensor keys, Tensor values, int heads) =>
        OnePosition(hidden) && BiasFits(bias, hidden.shape[0], heads, keys.shape[2])
        && keys.dim() == 4 && keys.shape[0] == hidden.shape[0] && keys.shape[1] == heads && keys.dtype == ScalarType.Float32
        && keys.device_type == TorchSharp.DeviceType.CPU && FloatGemv.IsDense(keys)
        && values.shape.SequenceEqual(keys.shape) && values.dtype == ScalarType.Float32 && FloatGemv.IsDense(values);

    /// <summary>q [B, 1, E] over keys, values [B, H, S, Dh] → the context [B, 1, E] (see <see cref="AppliesToCross"/>).</summary>
    public static Tensor Cross(Tensor q, Tensor keys, Tensor values, Tensor bias, int heads, double scaling) =>
        Attend(q, keys, values, (int)keys.shape[2], null, bias, heads, scaling);

    /// <summary>
    /// softmax(q·Kᵀ·scaling + mask)·V for every row and head over the first <paramref name="length"/> positions of
    /// keys, values [B, H, capacity, Dh] (whole contiguous buffers); <paramref name="append"/>: this position's keys
    /// and values [B, 1, E], written at its index first.
    /// </summary>
    private static Tensor Attend(Tensor q, Tensor keys, Tensor values, int length, (Tensor K, Tensor V, long At)? append, Tensor mask, int heads, double scaling)
    {
        long b = q.shape[0], e = q.shape[2];
        int headDim = (int)(e / heads);
        long capacity = keys.shape[2];
        long maskRows = mask.shape[0], maskHeads = mask.shape[1];
        float scale = (float)scaling;
        bool writes = append is not null;
        long position = append?.At ?? 0;
        using var qd = FloatGemv.Dense(q);
        using var md = FloatGemv.Dense(mask);
        var context = empty([b, 1, e], ScalarType.Float32);
        Calls++;
        fixed (byte* qb = qd.bytes, mb = md.bytes, cb = context.bytes, keyb = keys.bytes, valb = values.bytes,
               kb = writes ? append!.Value.K.bytes : default, vb = writes ? append!.Value.V.bytes : default)
        {
            float* qp = (float*)qb, kp = (float*)kb, vp = (float*)vb, mp = (float*)mb, cp = (float*)cb;
            float* keyp = (float*)keyb, valp = (float*)valb;
            DecodeThreads.ForRanges(b * heads, (start, end) =>
            {
                Span<float> scores = length > 1024 ? new float[length] : stackalloc float[length];
                Span<float> query = stackalloc float[headDim];
                for (long bh = start; bh < end; bh++)
                {
                    long row = bh / heads, head = bh % heads;
                    long at = row * e + head * headDim;                          // this head's slice of a [B, 1, E] row
                    float* cachedK = keyp + bh * capacity * headDim;             // [capacity, Dh] of this row and head
                    float* cachedV = valp + bh * capacity * headDim;
                    if (writes)
                    {
                        new ReadOnlySpan<float>(kp + at, headDim).CopyTo(new Span<float>(cachedK + position * headDim, headDim));
                        new ReadOnlySpan<float>(vp + at, headDim).CopyTo(new Span<float>(cachedV + position * headDim, headDim));
                    }
                    // As the reference: q scaled (and rounded to float) before the product.
                    for (int d = 0; d < headDim; d++) query[d] = qp[at + d] * scale;
                    float* m = mp + ((maskRows == 1 ? 0 : row) * maskHeads + (maskHeads == 1 ? 0 : head)) * length;
                    fixed (float* qs = query, s = scores)
                    {
                        float max = float.NegativeInfinity;
                        for (int j = 0; j < length; j++)
                        {
                            s[j] = Dot(qs, cachedK + (long)j * headDim, headDim) + m[j];
                            max = MathF.Max(max, s[j]);
                        }
                        float sum = 0;
                        for (int j = 0; j < length; j++) sum += s[j] = MathF.Exp(s[j] - max);
                        for (int j = 0; j < length; j++) s[j] /= sum;
                        WeightedSum(s, cachedV, length, headDim, cp + at);
                    }
                }
            });
        }
        GC.KeepAlive(keys);
        GC.KeepAlive(values);
        return context;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Dot(float* a, float* b, int n)
    {
        var acc0 = Vector256<float>.Zero;
        var acc1 = Vector256<float>.Zero;
        int i = 0;
        for (; i + 16 <= n; i += 16)
        {
            acc0 = Fma.MultiplyAdd(Avx.LoadVector256(a + i), Avx.LoadVector256(b + i), acc0);
            acc1 = Fma.MultiplyAdd(Avx.LoadVector256(a + i + 8), Avx.LoadVector256(b + i + 8), acc1);
        }
        for (; i + 8 <= n; i += 8) acc0 = Fma.MultiplyAdd(Avx.LoadVector256(a + i), Avx.LoadVector256(b + i), acc0);
        float sum = Vector256.Sum(Avx.Add(acc0, acc1));
        for (; i < n; i++) sum += a[i] * b[i];
        return sum;
    }

    /// <summary>output[d] = Σ_j p[j] · v[j, d] over a [length, n] block of values.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void WeightedSum(float* p, float* v, int length, int n, float* output)
    {
        int d = 0;
        for (; d + 8 <= n; d += 8)
        {
            var acc = Vector256<float>.Zero;
            for (int j = 0; j < length; j++) acc = Fma.MultiplyAdd(Vector256.Create(p[j]), Avx.LoadVector256(v + (long)j * n + d), acc);
            Avx.Store(output + d, acc);
        }
        for (; d < n; d++)
        {
            float acc = 0;
            for (int j = 0; j < length; j++) acc += p[j] * v[(long)j * n + d];
            output[d] = acc;
        }
    }
}
