using System.Text;
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace Blip2Sharp.Loading;

/// <summary>Writes safetensors files that Python's safetensors and the Hugging Face hub read.</summary>
public static class SafetensorsWriter
{
    /// <summary>Every parameter of a module under its name (with a prefix), in the layout transformers saves ({"format": "pt"}).</summary>
    public static void SaveModule(string path, nn.Module module, string prefix = "") =>
        Save(path, module.named_parameters().Select(p => new KeyValuePair<string, Tensor>(prefix + p.name, p.parameter)),
            new Dictionary<string, string> { ["format"] = "pt" });

    /// <summary>
    /// Writes <paramref name="tensors"/> to <paramref name="path"/> atomically: a temporary file in the same folder,
    /// flushed, then renamed over the target, so a reader never sees a half-written file.
    /// </summary>
    public static void Save(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.ToList();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, _) in list)
        {
            if (!names.Add(name)) throw new ArgumentException($"duplicate tensor name '{name}'.");
            if (name == "__metadata__") throw new ArgumentException("'__metadata__' is reserved.");
        }

        using var headerStream = new MemoryStream();
        using (var w = new Utf8JsonWriter(headerStream))
        {
            w.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                w.WriteStartObject("__metadata__");
                foreach (var (k, v) in metadata) w.WriteString(k, v);
                w.WriteEndObject();
            }
            long offset = 0;
            foreach (var (name, t) in list)
            {
                long bytes = t.NumberOfElements * DType.SizeOf(t.dtype);
                w.WriteStartObject(name);
                w.WriteString("dtype", DType.ToName(t.dtype));
                w.WriteStartArray("shape");
                foreach (var d in t.shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + bytes);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += bytes;
            }
            w.WriteEndObject();
        }
        var header = headerStream.ToArray().ToList();
        while (header.Count % 8 != 0) header.Add((byte)' '); // the data section starts 8-byte aligned

        string full = System.IO.Path.GetFullPath(path);
        string tmp = full + $".tmp-{Environment.ProcessId}-{Guid.NewGuid():N}";
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                fs.Write(BitConverter.GetBytes((ulong)header.Count));
                fs.Write(header.ToArray());
                foreach (var (_, t) in list)
                {
                    using var scope = NewDisposeScope();
                    var c = t.detach().cpu().contiguous();
                    if (c.NumberOfElements > 0) fs.Write(c.bytes);
                }
                fs.Flush(flushToDisk: true);
            }
            File.Move(tmp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }
}
