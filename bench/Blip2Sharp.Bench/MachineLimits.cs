using System.Diagnostics;
using static TorchSharp.torch;

namespace Blip2Sharp.Bench;

/// <summary>This machine's limits, measured in the same run as the models: GEMM rate at given shapes, read bandwidth.</summary>
public static class MachineLimits
{
    /// <summary>Best GFLOP/s of [m, k] × [k, n] over several repetitions.</summary>
    public static double GemmGflops(long m, long k, long n, int reps = 5)
    {
        using var scope = NewDisposeScope();
        var a = randn(m, k);
        var b = randn(k, n);
        using var warm = a.matmul(b);
        double best = double.MaxValue;
        for (int i = 0; i < reps; i++)
        {
            var sw = Stopwatch.StartNew();
            using var c = a.matmul(b);
            best = Math.Min(best, sw.Elapsed.TotalSeconds);
        }
        return 2.0 * m * k * n / best / 1e9;
    }

    /// <summary>Read bandwidth (GB/s, median of several runs) streaming a tensor of random values: a reduction over all of it.</summary>
    public static double ReadBandwidthGbs(long bytes = 1L << 30, int reps = 7)
    {
        using var scope = NewDisposeScope();
        var t = randn(bytes / 4);
        var times = new List<double>();
        for (int i = 0; i < reps; i++)
        {
            var sw = Stopwatch.StartNew();
            using var s = t.sum();
            s.item<float>();
            times.Add(sw.Elapsed.TotalSeconds);
        }
        times.Sort();
        return bytes / times[reps / 2] / 1e9;
    }

    /// <summary>
    /// Read bandwidth (GB/s, median) of a plain streaming read of 2 GiB over all threads with four AVX accumulators
    /// each: the access pattern of decoding, without any arithmetic to wait for.
    /// </summary>
    public static unsafe double StreamReadGbs(long bytes = 2L << 30, int reps = 7)
    {
        long n = bytes / 4;
        float* a = (float*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)bytes, 64);
        try
        {
            for (long i = 0; i < n; i++) a[i] = i % 97;
            int threads = Math.Max(1, get_num_threads());
            var times = new List<double>();
            var sums = new float[threads];
            for (int rep = 0; rep < reps; rep++)
            {
                var sw = Stopwatch.StartNew();
                Parallel.For(0, threads, t =>
                {
                    long s = t * n / threads, e = (t + 1) * n / threads;
                    var a0 = System.Runtime.Intrinsics.Vector256<float>.Zero; var a1 = a0; var a2 = a0; var a3 = a0;
                    for (long i = s; i + 32 <= e; i += 32)
                    {
                        a0 += System.Runtime.Intrinsics.Vector256.Load(a + i);
                        a1 += System.Runtime.Intrinsics.Vector256.Load(a + i + 8);
                        a2 += System.Runtime.Intrinsics.Vector256.Load(a + i + 16);
                        a3 += System.Runtime.Intrinsics.Vector256.Load(a + i + 24);
                    }
                    sums[t] = System.Runtime.Intrinsics.Vector256.Sum(a0 + a1 + a2 + a3);
                });
                times.Add(sw.Elapsed.TotalSeconds);
            }
            times.Sort();
            return bytes / times[reps / 2] / 1e9;
        }
        finally
        {
            System.Runtime.InteropServices.NativeMemory.AlignedFree(a);
        }
    }
}
