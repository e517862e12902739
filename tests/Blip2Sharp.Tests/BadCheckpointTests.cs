using System.Text;
using Blip2Sharp.Loading;
using Xunit;

namespace Blip2Sharp.Tests;

/// <summary>Every malformed weights file is a typed error whose message names the problem.</summary>
public class BadCheckpointTests
{
    /// <summary>Writes a safetensors file from a header text and a data section.</summary>
    private static string Write(string header, int dataBytes, long? declaredHeaderLength = null)
    {
        string path = Path.Combine(Fixtures.TempDir(), "bad.safetensors");
        var h = Encoding.UTF8.GetBytes(header);
        using var fs = File.Create(path);
        fs.Write(BitConverter.GetBytes(declaredHeaderLength ?? h.Length));
        fs.Write(h);
        fs.Write(new byte[dataBytes]);
        return path;
    }

    private static CheckpointFormatException Fails(string path) =>
        Assert.Throws<CheckpointFormatException>(() => SafetensorsFile.Open(path).Dispose());

    [Fact]
    public void HeaderLengthPastTheEndOfTheFile()
    {
        var e = Fails(Write("{}", 0, declaredHeaderLength: 1_000_000));
        Assert.Contains("runs past the end of the file", e.Message);
    }

    [Fact]
    public void FileShorterThanTheLengthField()
    {
        string path = Path.Combine(Fixtures.TempDir(), "short.safetensors");
        File.WriteAllBytes(path, [1, 2, 3]);
        Assert.Contains("too short", Fails(path).Message);
    }

    [Fact]
    public void HeaderIsNotJson()
    {
        Assert.Contains("not valid JSON", Fails(Write("{\"a\": [1, 2", 0)).Message);
    }

    [Fact]
    public void OffsetsOutOfRange()
    {
        var e = Fails(Write("""{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}""", 8));
        Assert.Contains("out of range", e.Message);
        Assert.Contains("'w'", e.Message);
    }

    [Fact]
    public void OffsetsOverlap()
    {
        var e = Fails(Write("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", 12));
        Assert.Contains("overlap", e.Message);
    }

    [Fact]
    public void UnknownDtype()
    {
        var e = Fails(Write("""{"w":{"dtype":"F31","shape":[1],"data_offsets":[0,4]}}""", 4));
        Assert.Contains("unknown dtype 'F31'", e.Message);
    }

    [Fact]
    public void ShapeTimesDtypeDiffersFromByteLength()
    {
        var e = Fails(Write("""{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}""", 8));
        Assert.Contains("12 bytes but its data_offsets span 8 bytes", e.Message);
    }

    [Fact]
    public void DuplicateNames()
    {
        var e = Fails(Write("""{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"w":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}""", 2));
        Assert.Contains("duplicate tensor name 'w'", e.Message);
    }

    [Fact]
    public void ShardedIndexNamingAMissingShard()
    {
        string dir = Fixtures.TempDir();
        foreach (var f in Directory.GetFiles(Fixtures.Dir("tiny-opt-sharded")))
            File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        File.Delete(Path.Combine(dir, "model-00002-of-00003.safetensors"));
        var e = Assert.Throws<CheckpointFormatException>(() => CheckpointReader.Open(dir).Dispose());
        Assert.Contains("model-00002-of-00003.safetensors", e.Message);
        Assert.Contains("missing", e.Message);
    }

    [Fact]
    public void MissingWeightsFile()
    {
        var e = Assert.Throws<FileNotFoundException>(() => SafetensorsFile.Open(Path.Combine(Fixtures.TempDir(), "none.safetensors")));
        Assert.Contains("file not found", e.Message);
        var e2 = Assert.Throws<FileNotFoundException>(() => CheckpointReader.Open(Fixtures.TempDir()));
        Assert.Contains("no weights found", e2.Message);
    }
}
