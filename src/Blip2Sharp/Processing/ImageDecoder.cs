using System.Buffers.Binary;
using SkiaSharp;

namespace Blip2Sharp.Processing;

/// <summary>Limits applied when decoding untrusted images.</summary>
public sealed record ImageDecodeOptions
{
    /// <summary>PIL's Image.MAX_IMAGE_PIXELS: larger images get a warning.</summary>
    public long WarnPixels { get; init; } = 89_478_485;
    /// <summary>Twice PIL's limit (PIL's DecompressionBombError threshold): larger images are refused.</summary>
    public long MaxPixels { get; init; } = 2 * 89_478_485L;
    /// <summary>Called with a message when an image exceeds <see cref="WarnPixels"/>.</summary>
    public Action<string>? OnWarning { get; init; }

    public static ImageDecodeOptions Default { get; } = new();
}

/// <summary>
/// Decodes JPEG, PNG, WebP, GIF (first frame) and BMP with SkiaSharp and converts to RGB the way PIL's
/// <c>convert("RGB")</c> does: alpha is dropped without compositing (so pixels are decoded unpremultiplied),
/// grayscale and palette images are expanded, no colour management and no EXIF rotation is applied.
/// </summary>
public static class ImageDecoder
{
    public static RgbImage DecodeFile(string path, ImageDecodeOptions? options = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: file not found.", path);
        byte[] data = File.ReadAllBytes(path);
        return Decode(data, path, options);
    }

    public static RgbImage Decode(byte[] data, string name, ImageDecodeOptions? options = null)
    {
        options ??= ImageDecodeOptions.Default;
        if (data.Length == 0) throw new ImageDecodeException($"{name}: the file is empty, not an image.");

        // A zero-sized image is invalid in every format, so decoders refuse to open it; read the header ourselves to say why.
        if (HeaderSize(data) is { } hs && (hs.Width == 0 || hs.Height == 0))
            throw new ImageDecodeException($"{name}: the image has zero width or height ({hs.Width}x{hs.Height}).");

        using var codec = SKCodec.Create(new MemoryStream(data, writable: false), out SKCodecResult createResult);
        if (codec is null)
        {
            throw createResult switch
            {
                SKCodecResult.IncompleteInput => new ImageDecodeException($"{name}: the image is truncated (its header is incomplete)."),
                SKCodecResult.Unimplemented => new ImageDecodeException($"{name}: not an image in a supported format (JPEG, PNG, WebP, GIF, BMP)."),
                _ => new ImageDecodeException($"{name}: not an image in a supported format (JPEG, PNG, WebP, GIF, BMP): {createResult}."),
            };
        }
        int w = codec.Info.Width, h = codec.Info.Height;
        if (w <= 0 || h <= 0) throw new ImageDecodeException($"{name}: the image has zero width or height ({w}x{h}).");
        long pixels = (long)w * h;
        if (pixels > options.MaxPixels)
            throw new ImageTooLargeException($"{name}: image size {w}x{h} ({pixels} pixels) exceeds the limit of {options.MaxPixels} pixels; this may be a decompression bomb. Raise the limit only for trusted images.");
        if (pixels > options.WarnPixels)
            options.OnWarning?.Invoke($"{name}: image size {w}x{h} ({pixels} pixels) exceeds {options.WarnPixels} pixels; this could be a decompression bomb.");

        var info = new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Unpremul); // no colour space: no conversion
        var rgba = new byte[checked(pixels * 4)];
        SKCodecResult result;
        unsafe
        {
            fixed (byte* p = rgba)
            {
                // Frame 0 only: for an animated GIF or WebP that is the first frame, as PIL's open() shows it.
                result = codec.GetPixels(info, (IntPtr)p, new SKCodecOptions(0));
            }
        }
        switch (result)
        {
            case SKCodecResult.Success:
                break;
            case SKCodecResult.IncompleteInput:
            case SKCodecResult.ErrorInInput:
                throw new ImageDecodeException($"{name}: the image data is truncated or corrupt ({result}).");
            default:
                throw new ImageDecodeException($"{name}: the image could not be decoded ({result}).");
        }

        var rgb = new byte[pixels * 3];
        for (long i = 0, j = 0; i < rgba.Length; i += 4, j += 3)
        {
            rgb[j] = rgba[i];
            rgb[j + 1] = rgba[i + 1];
            rgb[j + 2] = rgba[i + 2];
        }
        return new RgbImage(w, h, rgb);
    }

    /// <summary>Width and height from a PNG, GIF or BMP header, or null for other formats.</summary>
    private static (long Width, long Height)? HeaderSize(byte[] d)
    {
        ReadOnlySpan<byte> png = [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];
        if (d.Length >= 24 && d.AsSpan(0, 8).SequenceEqual(png) && d.AsSpan(12, 4).SequenceEqual("IHDR"u8))
            return (BinaryPrimitives.ReadUInt32BigEndian(d.AsSpan(16)), BinaryPrimitives.ReadUInt32BigEndian(d.AsSpan(20)));
        if (d.Length >= 10 && (d.AsSpan(0, 6).SequenceEqual("GIF87a"u8) || d.AsSpan(0, 6).SequenceEqual("GIF89a"u8)))
            return (BinaryPrimitives.ReadUInt16LittleEndian(d.AsSpan(6)), BinaryPrimitives.ReadUInt16LittleEndian(d.AsSpan(8)));
        if (d.Length >= 26 && d[0] == 'B' && d[1] == 'M' && BinaryPrimitives.ReadUInt32LittleEndian(d.AsSpan(14)) >= 40)
            return (Math.Abs((long)BinaryPrimitives.ReadInt32LittleEndian(d.AsSpan(18))), Math.Abs((long)BinaryPrimitives.ReadInt32LittleEndian(d.AsSpan(22))));
        return null;
    }
}
