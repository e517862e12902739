using Blip2Sharp.Processing;
using SkiaSharp;
using Xunit;

namespace Blip2Sharp.Tests;

/// <summary>Each container decodes to the exact pixels written into it by hand.</summary>
public class ImageFormatTests
{
    private static RgbImage Decode(byte[] bytes, string name)
    {
        string path = Path.Combine(Fixtures.TempDir(), name);
        File.WriteAllBytes(path, bytes);
        return ImageDecoder.DecodeFile(path);
    }

    [Fact]
    public void GifFirstFrameThroughItsPalette()
    {
        // 2×1 GIF89a, global palette [red, blue], pixels [0, 1]; LZW (min code size 2): clear, 0, 1, end = 0x0A44.
        byte[] gif =
        [
            .. "GIF89a"u8, 2, 0, 1, 0, 0x80, 0, 0, 0xFF, 0, 0, 0, 0, 0xFF,
            0x2C, 0, 0, 0, 0, 2, 0, 1, 0, 0, 2, 2, 0x44, 0x0A, 0, 0x3B,
        ];
        var img = Decode(gif, "two.gif");
        Assert.Equal((2, 1), (img.Width, img.Height));
        Assert.Equal(new byte[] { 255, 0, 0, 0, 0, 255 }, img.Pixels);
    }

    [Fact]
    public void Bmp24BitBottomUp()
    {
        // 2×2, rows stored bottom-up as BGR, each row padded to 4 bytes.
        var bmp = new List<byte>();
        int dataSize = 2 * 8;
        bmp.AddRange("BM"u8.ToArray());
        bmp.AddRange(BitConverter.GetBytes(54 + dataSize));
        bmp.AddRange(new byte[4]);
        bmp.AddRange(BitConverter.GetBytes(54));
        bmp.AddRange(BitConverter.GetBytes(40));
        bmp.AddRange(BitConverter.GetBytes(2));
        bmp.AddRange(BitConverter.GetBytes(2));
        bmp.AddRange(BitConverter.GetBytes((short)1));
        bmp.AddRange(BitConverter.GetBytes((short)24));
        bmp.AddRange(new byte[24]);
        bmp.AddRange(new byte[] { 0, 0, 255, 0, 255, 0, 0, 0 });     // bottom row: red, green
        bmp.AddRange(new byte[] { 255, 0, 0, 10, 20, 30, 0, 0 });    // top row: blue, (30,20,10)
        var img = Decode([.. bmp], "four.bmp");
        Assert.Equal(new byte[] { 0, 0, 255, 30, 20, 10, 255, 0, 0, 0, 255, 0 }, img.Pixels);
    }

    [Fact]
    public void LosslessWebpAndTranslucentPixelsKeepTheirColour()
    {
        // A translucent pixel must keep its stored colour (PIL drops alpha as is; premultiplying would darken it).
        var info = new SKImageInfo(2, 1, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        using var bitmap = new SKBitmap(info);
        bitmap.SetPixel(0, 0, new SKColor(200, 100, 50, 64));
        bitmap.SetPixel(1, 0, new SKColor(1, 2, 3, 255));
        using var pixmap = bitmap.PeekPixels();
        using var data = pixmap.Encode(new SKWebpEncoderOptions(SKWebpEncoderCompression.Lossless, 100));
        Assert.NotNull(data);
        var img = Decode(data!.ToArray(), "two.webp");
        Assert.Equal(new byte[] { 200, 100, 50, 1, 2, 3 }, img.Pixels);
    }

    [Fact]
    public void RgbaPngDropsAlphaWithoutCompositing()
    {
        var rgba = ImageDecoder.DecodeFile(Path.Combine(Fixtures.Dir("preprocess-224"), "images", "rgba_50x80.png"));
        var expected = Fixtures.Goldens("preprocess-224")["decoded_rgb.rgba_50x80"].data<byte>().ToArray();
        Assert.Equal(expected, rgba.Pixels);
    }
}
