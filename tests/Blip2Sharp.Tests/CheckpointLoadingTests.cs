using Blip2Sharp.Loading;
using Xunit;
using static TorchSharp.torch;

namespace Blip2Sharp.Tests;

public class CheckpointLoadingTests
{
    public static TheoryData<string> Checkpoints() => new() { "tiny-opt", "tiny-t5", "tiny-itm", "tiny-opt-bin", "tiny-opt-sharded" };

    [Theory]
    [MemberData(nameof(Checkpoints))]
    public void EveryFixtureCheckpointOpensWithItsTensors(string name)
    {
        using var reader = CheckpointReader.Open(Fixtures.Dir(name));
        Assert.NotEmpty(reader.Names);
        Assert.Contains("query_tokens", reader.Names);
        foreach (var n in reader.Names)
        {
            using var t = reader.Read(n);
            var (dtype, shape) = reader.Describe(n);
            Assert.Equal(shape, t.shape);
            Assert.Equal(dtype, t.dtype);
        }
    }

    [Fact]
    public void LoadedTensorsEqualTheFileBytes()
    {
        string path = Path.Combine(Fixtures.Dir("tiny-opt"), "model.safetensors");
        byte[] file = File.ReadAllBytes(path);
        ulong headerLen = BitConverter.ToUInt64(file, 0);
        using var st = SafetensorsFile.Open(path);
        foreach (var e in st.Entries)
        {
            using var t = st.ReadTensor(e.Name);
            var expected = file.AsSpan((int)(8 + (long)headerLen + e.Begin), (int)e.ByteLength).ToArray();
            Assert.Equal(expected, t.bytes.ToArray());
        }
    }

    [Theory]
    [InlineData("tiny-opt-bin", "pytorch")]
    [InlineData("tiny-opt-sharded", "safetensors")]
    public void OtherLayoutsLoadToTensorsIdenticalToTinyOpt(string name, string format)
    {
        using var reference = CheckpointReader.Open(Fixtures.Dir("tiny-opt"));
        using var other = CheckpointReader.Open(Fixtures.Dir(name));
        Assert.Equal(format, other.Format);
        Assert.Equal(3, other.Files.Count);
        // The pickles keep the tied lm_head alias; safetensors drops it. Every stored tensor must agree.
        foreach (var n in reference.Names)
        {
            using var a = reference.Read(n);
            using var b = other.Read(n);
            Assert.Equal(a.shape, b.shape);
            Assert.Equal(a.dtype, b.dtype);
            Assert.True(Fixtures.SameBits(a, b), $"{name}: tensor {n} differs");
        }
        foreach (var n in other.Names.Except(reference.Names))
        {
            Assert.Equal("language_model.lm_head.weight", n);
            using var lm = other.Read(n);
            using var emb = reference.Read("language_model.model.decoder.embed_tokens.weight");
            Assert.True(Fixtures.SameBits(lm, emb));
        }
    }

    [Fact]
    public void WrittenSafetensorsRoundTripEveryDtype()
    {
        string dir = Fixtures.TempDir();
        string path = Path.Combine(dir, "all.safetensors");
        var tensors = new Dictionary<string, Tensor>
        {
            ["f64"] = tensor(new double[] { 1.5, -2.25 }),
            ["f32"] = tensor(new float[] { 1, 2, 3, 4, 5, 6 }).reshape(2, 3),
            ["f16"] = tensor(new float[] { 0.5f, -1 }).to(ScalarType.Float16),
            ["bf16"] = tensor(new float[] { 3, -4 }).to(ScalarType.BFloat16),
            ["i64"] = tensor(new long[] { long.MaxValue, -1 }),
            ["i32"] = tensor(new int[] { int.MinValue, 7 }),
            ["i16"] = tensor(new short[] { -3, 300 }),
            ["i8"] = tensor(new sbyte[] { -128, 127 }),
            ["u8"] = tensor(new byte[] { 0, 255 }),
            ["bool"] = tensor(new bool[] { true, false, true }),
            ["empty"] = zeros(0, 4),
        };
        SafetensorsWriter.Save(path, tensors, new Dictionary<string, string> { ["format"] = "pt" });
        using var f = SafetensorsFile.Open(path);
        Assert.Equal("pt", f.Metadata["format"]);
        Assert.Equal(tensors.Count, f.Entries.Count);
        foreach (var (name, t) in tensors)
        {
            using var back = f.ReadTensor(name);
            Assert.Equal(t.dtype, back.dtype);
            Assert.Equal(t.shape, back.shape);
            Assert.True(Fixtures.SameBits(t, back), name);
        }
        Assert.Equal(["all.safetensors"], Directory.GetFiles(dir).Select(Path.GetFileName)); // no temporary left behind
        // The header is 8-byte aligned, as the format recommends.
        Assert.Equal(0UL, BitConverter.ToUInt64(File.ReadAllBytes(path), 0) % 8);
    }
}
