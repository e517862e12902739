using System.Diagnostics;
using Blip2Sharp.Modeling.Layers;
using static TorchSharp.torch;

namespace Blip2Sharp.Bench;

/// <summary>
/// The decoding product alone at blip2-opt-2.7b's decoder shapes (q, k, v, out 2560×2560, fc1 10240×2560, fc2
/// 2560×10240), over 8 layers' worth of weights (2.7 GB, far past the caches) for 1 to 16 input rows: how the time
/// per step grows with the rows, in GFLOP/s and GB/s of weights, rounds interleaved.
/// </summary>
public static class GemvRows
{
    /// <summary>The same products on weights that stay in the L2 caches (128 × 2560): the kernels' compute rate
    /// alone.</summary>
    public static void Cached()
    {
        using var noGrad = no_grad();
        var gen = new Generator(4);
        var w = randn([128, 2560], generator: gen);
        foreach (int rows in new[] { 1, 4, 8, 16, 1, 4, 8, 16 })
        {
            var x = randn([rows, 2560], generator: gen);
            for (int k = 0; k < 200; k++) FloatGemv.Linear(x, w, null).Dispose();
            var sw = Stopwatch.StartNew();
            const int reps = 4000;
            for (int k = 0; k < reps; k++) FloatGemv.Linear(x, w, null).Dispose();
            double s = sw.Elapsed.TotalSeconds / reps;
            Console.WriteLine($"{rows,2} rows, cached weights: {s * 1e6:F1} µs, {2.0 * rows * w.NumberOfElements / s / 1e9:F1} GFLOP/s");
        }
    }

    public static void Run(bool int8, bool torch, int layers = 8, int rounds = 3)
    {
        using var noGrad = no_grad();
        var gen = new Generator(3);
        var weights = new List<Tensor>();
        for (int l = 0; l < layers; l++)
        {
            for (int k = 0; k < 4; k++) weights.Add(randn([2560, 2560], generator: gen));
            weights.Add(randn([10240, 2560], generator: gen));
            weights.Add(randn([2560, 10240], generator: gen));
        }
        var quantized = int8 ? weights.Select(w => new Int8Weight(w)).ToList() : null;
        double bytes = weights.Sum(w => w.NumberOfElements * (int8 ? 1.0 : 4.0));
        // Each count with 512-bit lanes, then (code + 100) with the two-256-bit form of the same lanes (AVX2 machines).
        int[] counts = [1, 2, 4, 8, 12, 16, 101, 104, 108, 116];
        var best = counts.ToDictionary(c => c, _ => double.MaxValue);
        for (int round = 0; round < rounds; round++)
            foreach (int code in counts)
            {
                int rows = code % 100;
                FloatGemv.Wide512 = code < 100;
                var x2560 = randn([rows, 2560], generator: gen);
                var x10240 = randn([rows, 10240], generator: gen);
                var sw = Stopwatch.StartNew();
                for (int i = 0; i < weights.Count; i++)
                {
                    var x = weights[i].shape[1] == 2560 ? x2560 : x10240;
                    using var y = quantized is not null ? quantized[i].Linear(x, null)
                        : torch ? nn.functional.linear(x, weights[i]) : FloatGemv.Linear(x, weights[i], null);
                }
                best[code] = Math.Min(best[code], sw.Elapsed.TotalSeconds);
            }
        foreach (int code in counts)
        {
            int rows = code % 100;
            double s = best[code];
            Console.Write(code < 100 ? "512-bit " : "256-bit ");
            double flops = 2 * rows * weights.Sum(w => (double)w.NumberOfElements);
            double oneRow = best[code < 100 ? 1 : 101];
            Console.WriteLine($"{rows,2} rows: {s * 1000:F1} ms for {bytes / 1e9:F2} GB of weights: " +
                $"{bytes / s / 1e9:F1} GB/s, {flops / s / 1e9:F1} GFLOP/s, {s / oneRow:F2} × one row");
        }
    }
}
