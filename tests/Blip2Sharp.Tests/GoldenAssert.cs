using System.Text.Json.Nodes;
using Xunit;
using static TorchSharp.torch;

namespace Blip2Sharp.Tests;

/// <summary>|port − golden| ≤ atol + rtol·|golden| with the fixture's own per-tensor tolerances.</summary>
public sealed class GoldenAssert(string fixture)
{
    private readonly JsonObject _tolerance = (JsonObject)Fixtures.Manifest(fixture)["tolerance"]!;
    public Dictionary<string, Tensor> Goldens { get; } = Fixtures.Goldens(fixture);

    public double Atol(string name) =>
        _tolerance["recommended_atol"]?[name] is JsonNode n ? (double)n
        : _tolerance["recommended_atol"]?[name.Split('.')[0]] is JsonNode m ? (double)m
        : 1e-5;

    public double Rtol => _tolerance["recommended_rtol"] is JsonNode n ? (double)n : 1e-4;

    public void Close(string name, Tensor actual) => Close(name, actual, Goldens[name]);

    /// <summary>A part of a golden (a slice of it) with that golden's tolerances.</summary>
    public void Close(string name, Tensor actual, Tensor expected)
    {
        Assert.True(expected.shape.SequenceEqual(actual.shape),
            $"{name}: shape [{string.Join(", ", actual.shape)}], golden [{string.Join(", ", expected.shape)}]");
        using var a = actual.detach().to(ScalarType.Float64).cpu();
        using var e = expected.to(ScalarType.Float64);
        using var excess = (a - e).abs() - (e.abs() * Rtol + Atol(name));
        double worst = excess.max().item<double>();
        double maxAbs = (a - e).abs().max().item<double>();
        Assert.True(worst <= 0, $"{name}: max |diff| {maxAbs:E3} exceeds atol {Atol(name):E1} + rtol {Rtol:E1}·|golden|");
    }
}
