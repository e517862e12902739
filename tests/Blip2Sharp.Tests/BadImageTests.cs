using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using Blip2Sharp.Processing;
using Xunit;

namespace Blip2Sharp.Tests;

/// <summary>Every unusable image is a typed error whose message names the problem.</summary>
public class BadImageTests
{
    private static string Image(string name) => Path.Combine(Fixtures.Dir("preprocess-224"), "images", name);

    private static string WriteTemp(string name, byte[] bytes)
    {
        string path = Path.Combine(Fixtures.TempDir(), name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static uint Crc32(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320 : crc >> 1;
        }
        return ~crc;
    }

    private static void Chunk(MemoryStream s, string type, byte[] data)
    {
        var len = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(len, (uint)data.Length);
        s.Write(len);
        var body = Encoding.ASCII.GetBytes(type).Concat(data).ToArray();
        s.Write(body);
        var crc = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(crc, Crc32(body));
        s.Write(crc);
    }

    /// <summary>A well-formed RGB PNG header claiming width × height, with one tiny compressed row.</summary>
    internal static byte[] PngClaiming(uint width, uint height)
    {
        var s = new MemoryStream();
        s.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        var ihdr = new byte[13];
        BinaryPrimitives.WriteUInt32BigEndian(ihdr, width);
        BinaryPrimitives.WriteUInt32BigEndian(ihdr.AsSpan(4), height);
        ihdr[8] = 8; // bit depth
        ihdr[9] = 2; // RGB
        Chunk(s, "IHDR", ihdr);
        var z = new MemoryStream();
        using (var zs = new ZLibStream(z, CompressionLevel.Fastest, leaveOpen: true)) zs.Write(new byte[16]);
        Chunk(s, "IDAT", z.ToArray());
        Chunk(s, "IEND", []);
        return s.ToArray();
    }

    [Fact]
    public void MissingFile()
    {
        var e = Assert.Throws<FileNotFoundException>(() => ImageDecoder.DecodeFile(Path.Combine(Fixtures.TempDir(), "nope.png")));
        Assert.Contains("file not found", e.Message);
    }

    [Fact]
    public void NotAnImage()
    {
        string path = WriteTemp("notes.png", Encoding.UTF8.GetBytes("these are some notes, not a picture\n"));
        var e = Assert.Throws<ImageDecodeException>(() => ImageDecoder.DecodeFile(path));
        Assert.Contains("not an image", e.Message);
    }

    [Fact]
    public void EmptyFile()
    {
        var e = Assert.Throws<ImageDecodeException>(() => ImageDecoder.DecodeFile(WriteTemp("empty.jpg", [])));
        Assert.Contains("empty", e.Message);
    }

    [Theory]
    [InlineData("photo_120x90.jpg")]
    [InlineData("rgb_640x480.png")]
    public void TruncatedImage(string name)
    {
        var bytes = File.ReadAllBytes(Image(name));
        string path = WriteTemp("cut_" + name, bytes[..(bytes.Length / 2)]);
        var e = Assert.Throws<ImageDecodeException>(() => ImageDecoder.DecodeFile(path));
        Assert.Contains("truncated", e.Message);
    }

    [Fact]
    public void CorruptImageData()
    {
        var bytes = File.ReadAllBytes(Image("rgb_640x480.png"));
        for (int i = bytes.Length / 3; i < bytes.Length / 3 + 64; i++) bytes[i] ^= 0x5A; // damage the compressed stream
        var e = Assert.Throws<ImageDecodeException>(() => ImageDecoder.DecodeFile(WriteTemp("corrupt.png", bytes)));
        Assert.Contains("corrupt", e.Message);
    }

    [Theory]
    [InlineData(0u, 10u)]
    [InlineData(10u, 0u)]
    public void ZeroWidthOrHeight(uint w, uint h)
    {
        var e = Assert.Throws<ImageDecodeException>(() => ImageDecoder.DecodeFile(WriteTemp("zero.png", PngClaiming(w, h))));
        Assert.Contains("zero width or height", e.Message);
    }

    [Fact]
    public void DecompressionBombIsRefusedBeforeDecoding()
    {
        // 20000 × 20000 = 400 megapixels declared in a file of a few dozen bytes.
        var e = Assert.Throws<ImageTooLargeException>(() => ImageDecoder.DecodeFile(WriteTemp("bomb.png", PngClaiming(20000, 20000))));
        Assert.Contains("400000000 pixels", e.Message);
        Assert.Contains("decompression bomb", e.Message);
    }

    [Fact]
    public void PixelLimitIsConfigurableAndWarnsBelowIt()
    {
        var tight = new ImageDecodeOptions { MaxPixels = 1000 };
        var e = Assert.Throws<ImageTooLargeException>(() => ImageDecoder.DecodeFile(Image("rgb_640x480.png"), tight));
        Assert.Contains("307200 pixels", e.Message);

        var warnings = new List<string>();
        var warn = new ImageDecodeOptions { WarnPixels = 1000, OnWarning = warnings.Add };
        var img = ImageDecoder.DecodeFile(Image("rgb_640x480.png"), warn);
        Assert.Equal((640, 480), (img.Width, img.Height));
        Assert.Single(warnings);
        Assert.Contains("decompression bomb", warnings[0]);
    }
}
