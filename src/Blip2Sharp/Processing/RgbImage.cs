namespace Blip2Sharp.Processing;

/// <summary>An 8-bit RGB image, rows top to bottom, channels last (HWC), as numpy sees PIL's "RGB" mode.</summary>
public sealed class RgbImage
{
    public int Width { get; }
    public int Height { get; }
    /// <summary>Height × Width × 3 bytes.</summary>
    public byte[] Pixels { get; }

    public RgbImage(int width, int height, byte[] pixels)
    {
        if (width <= 0 || height <= 0) throw new ArgumentException($"image size {width}x{height} must be positive.");
        if (pixels.Length != checked(width * height * 3)) throw new ArgumentException($"expected {width * height * 3} bytes for {width}x{height} RGB, got {pixels.Length}.");
        Width = width;
        Height = height;
        Pixels = pixels;
    }
}
