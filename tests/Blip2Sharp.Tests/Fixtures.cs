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

    /// <summary>A new empty directory under this test run's own folder, deleted at the end of the run or by the next run.</summary>
    public static string TempDir()
    {
        string d = Path.Combine(RunRoot.Value, Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(d);
        return d;
    }

    // One folder per test process: the tests write checkpoints, datasets and reports (~70 MB a run), and every run
    // used to leave them behind (5.3 GB after a few days). Deleting at process exit is only attempted: the test
    // platform kills its host soon after the last test, mid-delete. So each run also sweeps the folders of runs
    // whose process is gone, which bounds what is left to the last run's.
    static readonly Lazy<string> RunRoot = new(() =>
    {
        string parent = Path.Combine(Path.GetTempPath(), "blip2sharp-tests");
        Directory.CreateDirectory(parent);
        foreach (var old in new DirectoryInfo(parent).EnumerateDirectories())
            if (!RunIsAlive(old.Name))
                TryDelete(old.FullName);
        string root = Path.Combine(parent, $"run-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(root);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => TryDelete(root);
        return root;
    });

    /// <summary>Whether a folder named run-PID-GUID belongs to a live process (other names: legacy, not alive).</summary>
    static bool RunIsAlive(string name)
    {
        var parts = name.Split('-');
        if (parts.Length != 3 || parts[0] != "run" || !int.TryParse(parts[1], out int pid)) return false;
        try
        {
            using var p = System.Diagnostics.Process.GetProcessById(pid);
            return !p.HasExited;
        }
        catch (ArgumentException) { return false; } // no such process
    }

    static void TryDelete(string dir)
    {
        try { Directory.Delete(dir, recursive: true); }
        catch (IOException) { } // still in use by another run, or already gone: not this run's business
        catch (UnauthorizedAccessException) { }
    }
}
