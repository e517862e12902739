using System.Text.Json.Nodes;
using Blip2Sharp.Loading;
using static TorchSharp.torch;

namespace Blip2Sharp.Tests;

/// <summary>Paths of the golden fixtures copied next to the tests, and readers for their goldens.</summary>
public static class Fixtures
{
    public static string Root { get; } = Path.Combine(AppContext.BaseDirectory, "fixtures");

    public static string Dir(string name) => Path.Combine(Root, name);

    public static JsonObject Manifest(string name) =>
        (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(Dir(name), "golden.json")))!;

    /// <summary>Reads every tensor of a fixture's golden.safetensors.</summary>
    public static Dictionary<string, Tensor> Goldens(string name)
    {
        using var f = SafetensorsFile.Open(Path.Combine(Dir(name), "golden.safetensors"));
        return f.Entries.ToDictionary(e => e.Name, e => f.ReadTensor(e.Name));
    }

    /// <summary>Same dtype, shape and bytes.</summary>
    public static bool SameBits(Tensor a, Tensor b) =>
        a.dtype == b.dtype && a.shape.SequenceEqual(b.shape)
        && a.contiguous().bytes.SequenceEqual(b.contiguous().bytes);

    public static string TempDir()
    {
        string d = Path.Combine(Path.GetTempPath(), "blip2sharp-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(d);
        return d;
    }
}
