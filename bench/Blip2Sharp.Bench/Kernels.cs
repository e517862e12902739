using BenchmarkDotNet.Attributes;
using Blip2Sharp.Modeling.Layers;
using static TorchSharp.torch;

namespace Blip2Sharp.Bench;

/// <summary>
/// BenchmarkDotNet micro-benchmarks of the hot kernels at blip2-opt-2.7b shapes: the one-row product of decoding in
/// float32 and int8, the ViT-g MLP GEMM, attention softmax, and LayerNorm.
/// Run: dotnet run -c Release --project bench/Blip2Sharp.Bench -- micro
/// </summary>
[MemoryDiagnoser]
public class Kernels
{
    private Tensor _w = null!, _x = null!, _a = null!, _b = null!, _scores = null!, _h = null!, _lnW = null!, _lnB = null!;
    private Int8Weight _q = null!;

    [GlobalSetup]
    public void Setup()
    {
        _w = randn(10240, 2560);      // OPT-2.7b fc1
        _x = randn(1, 2560);
        _q = new Int8Weight(_w);
        _a = randn(257, 1408);        // ViT-g tokens × width
        _b = randn(1408, 6144);       // ViT-g fc1
        _scores = randn(1, 32, 1, 128);
        _h = randn(257, 1408);
        _lnW = ones(1408);
        _lnB = zeros(1408);
    }

    [Benchmark] public void DecodeGemvFloat32() { using var y = nn.functional.linear(_x, _w); }
    [Benchmark] public void DecodeGemvInt8() { using var y = _q.Linear(_x, null); }
    [Benchmark] public void VitMlpGemm() { using var y = _a.matmul(_b); }
    [Benchmark] public void AttentionSoftmax() { using var y = _scores.softmax(-1); }
    [Benchmark] public void LayerNorm1408() { using var y = nn.functional.layer_norm(_h, [1408], _lnW, _lnB, 1e-6); }

    [GlobalCleanup]
    public void Cleanup()
    {
        _q.Dispose();
        foreach (var t in new[] { _w, _x, _a, _b, _scores, _h, _lnW, _lnB }) t.Dispose();
    }
}
