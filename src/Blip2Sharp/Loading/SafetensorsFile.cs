using System.IO.MemoryMappedFiles;
using System.Text;
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace Blip2Sharp.Loading;

/// <summary>Where one tensor lies in a safetensors file.</summary>
public sealed record TensorEntry(string Name, string DType, ScalarType ScalarType, long[] Shape, long Begin, long End)
{
    public long ByteLength => End - Begin;
    public long NumElements => Shape.Aggregate(1L, (a, b) => a * b);
}

/// <summary>
/// A safetensors file read memory-mapped: the header is parsed and checked up front; tensor bytes are read from the
/// mapping on demand, so the file is never copied whole into managed memory.
/// </summary>
public sealed unsafe class SafetensorsFile : IDisposable
{
    /// <summary>Headers larger than this are refused (the reference implementation's limit is 100 MB).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private readonly byte* _base;
    private readonly long _dataStart;
    private readonly Dictionary<string, TensorEntry> _entries;
    private readonly Microsoft.Win32.SafeHandles.SafeFileHandle _handle;

    public string Path { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }
    /// <summary>Tensor entries in file order of their data.</summary>
    public IReadOnlyList<TensorEntry> Entries { get; }

    private SafetensorsFile(string path, MemoryMappedFile? map, MemoryMappedViewAccessor? view, byte* basePtr, long dataStart,
        List<TensorEntry> entries, Dictionary<string, string> metadata)
    {
        Path = path;
        _handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        _map = map;
        _view = view;
        _base = basePtr;
        _dataStart = dataStart;
        Entries = entries;
        _entries = entries.ToDictionary(e => e.Name, StringComparer.Ordinal);
        Metadata = metadata;
    }

    public bool Contains(string name) => _entries.ContainsKey(name);

    public TensorEntry this[string name] => _entries.TryGetValue(name, out var e)
        ? e : throw new KeyNotFoundException($"{Path}: no tensor named '{name}'.");

    public static SafetensorsFile Open(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: file not found.", path);
        long length = new FileInfo(path).Length;
        if (length < 8) throw new CheckpointFormatException($"{path}: too short for a safetensors file ({length} bytes; the header length alone takes 8).");

        MemoryMappedFile map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        MemoryMappedViewAccessor? view = null;
        try
        {
            view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            byte* p = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
            p += view.PointerOffset;
            ulong headerLen = *(ulong*)p; // little-endian u64
            if (headerLen > (ulong)(length - 8))
                throw new CheckpointFormatException($"{path}: header length {headerLen} runs past the end of the file ({length} bytes).");
            if (headerLen > MaxHeaderBytes)
                throw new CheckpointFormatException($"{path}: header length {headerLen} exceeds the limit of {MaxHeaderBytes} bytes.");
            long dataStart = 8 + (long)headerLen;
            var header = new ReadOnlySpan<byte>(p + 8, (int)headerLen);
            var (entries, metadata) = ParseHeader(path, header, length - dataStart);
            return new SafetensorsFile(path, map, view, p, dataStart, entries, metadata);
        }
        catch
        {
            if (view is not null)
            {
                view.SafeMemoryMappedViewHandle.ReleasePointer();
                view.Dispose();
            }
            map.Dispose();
            throw;
        }
    }

    private static (List<TensorEntry>, Dictionary<string, string>) ParseHeader(string path, ReadOnlySpan<byte> header, long dataLength)
    {
        JsonDocument doc;
        try
        {
            var reader = new Utf8JsonReader(header.TrimEnd((byte)' '));
            doc = JsonDocument.ParseValue(ref reader);
            if (reader.BytesConsumed != header.TrimEnd((byte)' ').Length) throw new JsonException("trailing data after the header object");
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException($"{path}: the header is not valid JSON ({e.Message}).", e);
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new CheckpointFormatException($"{path}: the header is not a JSON object.");
            var entries = new List<TensorEntry>();
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                if (!seen.Add(prop.Name))
                    throw new CheckpointFormatException($"{path}: duplicate tensor name '{prop.Name}' in the header.");
                if (prop.Name == "__metadata__")
                {
                    if (prop.Value.ValueKind != JsonValueKind.Object)
                        throw new CheckpointFormatException($"{path}: __metadata__ must be an object of strings.");
                    foreach (var m in prop.Value.EnumerateObject())
                        metadata[m.Name] = m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()! : m.Value.GetRawText();
                    continue;
                }
                entries.Add(ParseEntry(path, prop, dataLength));
            }
            entries.Sort((a, b) => a.Begin != b.Begin ? a.Begin.CompareTo(b.Begin) : a.End.CompareTo(b.End));
            for (int i = 1; i < entries.Count; i++)
            {
                if (entries[i].Begin < entries[i - 1].End)
                    throw new CheckpointFormatException($"{path}: tensors '{entries[i - 1].Name}' and '{entries[i].Name}' overlap (bytes {entries[i - 1].Begin}-{entries[i - 1].End} and {entries[i].Begin}-{entries[i].End}).");
            }
            return (entries, metadata);
        }
    }

    private static TensorEntry ParseEntry(string path, JsonProperty prop, long dataLength)
    {
        var v = prop.Value;
        string name = prop.Name;
        if (v.ValueKind != JsonValueKind.Object
            || !v.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String
            || !v.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array
            || !v.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
            throw new CheckpointFormatException($"{path}: tensor '{name}' needs dtype, shape and data_offsets [begin, end].");
        string dtype = dt.GetString()!;
        if (!DType.TryParse(dtype, out var scalar, out int size))
            throw new CheckpointFormatException($"{path}: tensor '{name}' has unknown dtype '{dtype}' (known: {string.Join(", ", DType.Names)}).");
        var shape = new long[sh.GetArrayLength()];
        int k = 0;
        foreach (var d in sh.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long dim) || dim < 0)
                throw new CheckpointFormatException($"{path}: tensor '{name}' has an invalid shape {sh.GetRawText()}.");
            shape[k++] = dim;
        }
        if (!off[0].TryGetInt64(out long begin) || !off[1].TryGetInt64(out long end) || begin < 0 || end < begin)
            throw new CheckpointFormatException($"{path}: tensor '{name}' has invalid data_offsets {off.GetRawText()}.");
        if (end > dataLength)
            throw new CheckpointFormatException($"{path}: tensor '{name}' data_offsets {off.GetRawText()} are out of range (the data section has {dataLength} bytes).");
        long expected = size;
        try
        {
            foreach (var d in shape) expected = checked(expected * d);
        }
        catch (OverflowException)
        {
            throw new CheckpointFormatException($"{path}: tensor '{name}' shape {sh.GetRawText()} is too large.");
        }
        if (expected != end - begin)
            throw new CheckpointFormatException($"{path}: tensor '{name}' has shape {sh.GetRawText()} × {dtype} = {expected} bytes but its data_offsets span {end - begin} bytes.");
        return new TensorEntry(name, dtype, scalar, shape, begin, end);
    }

    /// <summary>The raw little-endian bytes of a tensor, straight from the mapping.</summary>
    public ReadOnlySpan<byte> GetBytes(string name)
    {
        var e = this[name];
        if (e.ByteLength > int.MaxValue) throw new NotSupportedException($"{Path}: tensor '{name}' is larger than 2 GiB.");
        return new ReadOnlySpan<byte>(_base + _dataStart + e.Begin, (int)e.ByteLength);
    }

    /// <summary>
    /// A new CPU tensor of the stored dtype holding the tensor's bytes, read straight from the file into the tensor's
    /// memory (positioned reads, no managed copy). Reading rather than copying from the mapping keeps the file's pages
    /// out of the process's resident set, so loading a checkpoint peaks near the size of its weights.
    /// </summary>
    public Tensor ReadTensor(string name)
    {
        var e = this[name];
        var t = empty(e.Shape, e.ScalarType);
        if (e.ByteLength == 0) return t;
        var target = t.bytes;
        long offset = _dataStart + e.Begin;
        int done = 0;
        while (done < target.Length)
        {
            int n = RandomAccess.Read(_handle, target[done..], offset + done);
            if (n <= 0) throw new CheckpointFormatException($"{Path}: unexpected end of file while reading tensor '{name}'.");
            done += n;
        }
        return t;
    }

    public void Dispose()
    {
        _handle.Dispose();
        if (_view is not null)
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
        }
        _map?.Dispose();
    }
}
