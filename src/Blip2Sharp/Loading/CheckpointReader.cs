using System.Collections;
using System.Text.Json.Nodes;
using Blip2Sharp.Configuration;
using static TorchSharp.torch;

namespace Blip2Sharp.Loading;

/// <summary>
/// The weights of a Hugging Face checkpoint folder, whatever their layout: model.safetensors, sharded safetensors
/// (model.safetensors.index.json), pytorch_model.bin, or sharded pickles (pytorch_model.bin.index.json).
/// Tensor names are exactly as stored.
/// </summary>
public sealed class CheckpointReader : IDisposable
{
    private readonly Dictionary<string, SafetensorsFile> _safetensorsByName = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Tensor> _pickled = new(StringComparer.Ordinal);
    private readonly List<SafetensorsFile> _files = [];

    /// <summary>"safetensors" or "pytorch" (pickle).</summary>
    public string Format { get; }
    public IReadOnlyList<string> Files { get; }
    public IReadOnlyList<string> Names { get; }

    private CheckpointReader(string format, List<string> files, List<string> names)
    {
        Format = format;
        Files = files;
        Names = names;
    }

    public static bool HasWeights(string folder) =>
        WeightFileNames.Any(f => File.Exists(System.IO.Path.Combine(folder, f)));

    private static readonly string[] WeightFileNames =
        ["model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json"];

    public static CheckpointReader Open(string folder)
    {
        CheckpointFolder.RequireNotFile(folder);
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"{folder}: checkpoint folder not found.");
        string P(string f) => System.IO.Path.Combine(folder, f);
        if (File.Exists(P("model.safetensors"))) return OpenSafetensors([P("model.safetensors")], null);
        if (File.Exists(P("model.safetensors.index.json"))) return OpenIndexed(folder, P("model.safetensors.index.json"), safetensors: true);
        if (File.Exists(P("pytorch_model.bin"))) return OpenPickles([P("pytorch_model.bin")], null);
        if (File.Exists(P("pytorch_model.bin.index.json"))) return OpenIndexed(folder, P("pytorch_model.bin.index.json"), safetensors: false);
        throw new FileNotFoundException($"{folder}: no weights found; expected one of {string.Join(", ", WeightFileNames)}.");
    }

    private static CheckpointReader OpenIndexed(string folder, string indexPath, bool safetensors)
    {
        JsonObject index = ConfigJson.ReadObject(indexPath);
        if (index["weight_map"] is not JsonObject map)
            throw new CheckpointFormatException($"{indexPath}: no 'weight_map' object.");
        var weightMap = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, shard) in map)
        {
            string? file = shard?.GetValue<string>();
            if (string.IsNullOrEmpty(file) || file.Contains('/') || file.Contains('\\') || file.Contains(".."))
                throw new CheckpointFormatException($"{indexPath}: tensor '{name}' maps to an invalid shard name '{file}'.");
            weightMap[name] = file;
        }
        var shards = weightMap.Values.Distinct().Select(f => System.IO.Path.Combine(folder, f)).ToList();
        foreach (var s in shards)
        {
            if (!File.Exists(s))
                throw new CheckpointFormatException($"{indexPath}: names shard '{System.IO.Path.GetFileName(s)}', which is missing from {folder}.");
        }
        return safetensors ? OpenSafetensors(shards, weightMap) : OpenPickles(shards, weightMap);
    }

    private static CheckpointReader OpenSafetensors(List<string> paths, Dictionary<string, string>? weightMap)
    {
        var files = new List<SafetensorsFile>();
        try
        {
            foreach (var p in paths) files.Add(SafetensorsFile.Open(p));
            var names = new List<string>();
            var reader = new CheckpointReader("safetensors", paths, names);
            foreach (var f in files)
            {
                reader._files.Add(f);
                foreach (var e in f.Entries.OrderBy(e => e.Name, StringComparer.Ordinal))
                {
                    if (!reader._safetensorsByName.TryAdd(e.Name, f))
                        throw new CheckpointFormatException($"tensor '{e.Name}' is stored twice: in {reader._safetensorsByName[e.Name].Path} and {f.Path}.");
                    names.Add(e.Name);
                }
            }
            CheckIndex(weightMap, reader._safetensorsByName.ToDictionary(kv => kv.Key, kv => kv.Value.Path));
            return reader;
        }
        catch
        {
            foreach (var f in files) f.Dispose();
            throw;
        }
    }

    private static CheckpointReader OpenPickles(List<string> paths, Dictionary<string, string>? weightMap)
    {
        var names = new List<string>();
        var reader = new CheckpointReader("pytorch", paths, names);
        var where = new Dictionary<string, string>(StringComparer.Ordinal);
        try
        {
            foreach (var p in paths)
            {
                Hashtable table;
                try
                {
                    table = TorchSharp.PyBridge.PyTorchUnpickler.UnpickleStateDict(p);
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    throw new CheckpointFormatException($"{p}: not a readable PyTorch state dict ({e.Message}).", e);
                }
                foreach (DictionaryEntry kv in table)
                {
                    string name = (string)kv.Key;
                    if (kv.Value is not Tensor t)
                        throw new CheckpointFormatException($"{p}: entry '{name}' is not a tensor.");
                    if (!reader._pickled.TryAdd(name, t))
                        throw new CheckpointFormatException($"tensor '{name}' is stored twice: in {where[name]} and {p}.");
                    where[name] = p;
                }
            }
            names.AddRange(reader._pickled.Keys.Order(StringComparer.Ordinal));
            CheckIndex(weightMap, where);
            return reader;
        }
        catch
        {
            reader.Dispose();
            throw;
        }
    }

    private static void CheckIndex(Dictionary<string, string>? weightMap, Dictionary<string, string> actual)
    {
        if (weightMap is null) return;
        foreach (var (name, shard) in weightMap)
        {
            if (!actual.TryGetValue(name, out var file))
                throw new CheckpointFormatException($"the index maps '{name}' to {shard}, but no shard holds it.");
            if (System.IO.Path.GetFileName(file) != shard)
                throw new CheckpointFormatException($"the index maps '{name}' to {shard}, but it is stored in {System.IO.Path.GetFileName(file)}.");
        }
        foreach (var name in actual.Keys)
        {
            if (!weightMap.ContainsKey(name))
                throw new CheckpointFormatException($"tensor '{name}' is stored in {System.IO.Path.GetFileName(actual[name])} but not listed in the index.");
        }
    }

    public bool Contains(string name) => _safetensorsByName.ContainsKey(name) || _pickled.ContainsKey(name);

    /// <summary>The stored dtype and shape of a tensor, without reading its data.</summary>
    public (ScalarType DType, long[] Shape) Describe(string name)
    {
        if (_safetensorsByName.TryGetValue(name, out var f)) { var e = f[name]; return (e.ScalarType, e.Shape); }
        if (_pickled.TryGetValue(name, out var t)) return (t.dtype, t.shape);
        throw new KeyNotFoundException($"no tensor named '{name}' in the checkpoint.");
    }

    /// <summary>A new CPU tensor holding the stored values in the stored dtype (the caller owns it).</summary>
    public Tensor Read(string name)
    {
        if (_safetensorsByName.TryGetValue(name, out var f)) return f.ReadTensor(name);
        if (_pickled.TryGetValue(name, out var t)) return t.clone();
        throw new KeyNotFoundException($"no tensor named '{name}' in the checkpoint.");
    }

    public void Dispose()
    {
        foreach (var f in _files) f.Dispose();
        foreach (var t in _pickled.Values) t.Dispose();
        _files.Clear();
        _pickled.Clear();
    }
}
