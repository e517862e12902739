namespace Blip2Sharp.Processing;

/// <summary>
/// PIL's BICUBIC resize of an 8-bit image (Pillow's Resample.c), reproduced to the bit: a separable two-pass
/// convolution (horizontal, then vertical), cubic kernel with a = -0.5 and support 2 widened by the scale factor
/// when shrinking (antialiasing), coefficients normalised then converted to 22-bit fixed point, and uint8
/// rounding and clamping after each pass. A dimension whose size does not change is not resampled.
/// </summary>
public static class PilBicubic
{
    private const int PrecisionBits = 32 - 8 - 2;

    private static double Cubic(double x)
    {
        const double a = -0.5;
        if (x < 0) x = -x;
        if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
        if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
        return 0;
    }

    /// <summary>Per output pixel: first input index, tap count, and fixed-point coefficients (ksize each).</summary>
    private static (int[] Bounds, int[] Coeffs, int KSize) Coefficients(int inSize, int outSize)
    {
        double scale = (double)inSize / outSize;
        double filterScale = Math.Max(scale, 1.0);
        double support = 2.0 * filterScale;
        int ksize = (int)Math.Ceiling(support) * 2 + 1;
        var bounds = new int[outSize * 2];
        var coeffs = new int[outSize * ksize];
        var k = new double[ksize];
        for (int xx = 0; xx < outSize; xx++)
        {
            double center = (xx + 0.5) * scale;
            double ww = 0.0, ss = 1.0 / filterScale;
            // Round the value (C's truncating cast of x + 0.5, as Pillow writes it).
            int xmin = (int)(center - support + 0.5);
            if (xmin < 0) xmin = 0;
            int xmax = (int)(center + support + 0.5);
            if (xmax > inSize) xmax = inSize;
            xmax -= xmin;
            for (int x = 0; x < xmax; x++)
            {
                double w = Cubic((x + xmin - center + 0.5) * ss);
                k[x] = w;
                ww += w;
            }
            for (int x = 0; x < xmax; x++)
            {
                double v = ww != 0.0 ? k[x] / ww : k[x];
                // normalize_coeffs_8bpc: round half away from zero into fixed point.
                coeffs[xx * ksize + x] = v < 0
                    ? (int)(-0.5 + v * (1 << PrecisionBits))
                    : (int)(0.5 + v * (1 << PrecisionBits));
            }
            bounds[xx * 2] = xmin;
            bounds[xx * 2 + 1] = xmax;
        }
        return (bounds, coeffs, ksize);
    }

    private static byte Clip8(int v)
    {
        int s = v >> PrecisionBits;
        return s < 0 ? (byte)0 : s > 255 ? (byte)255 : (byte)s;
    }

    public static RgbImage Resize(RgbImage image, int outWidth, int outHeight)
    {
        if (outWidth <= 0 || outHeight <= 0) throw new ArgumentException($"target size {outWidth}x{outHeight} must be positive.");
        var src = image.Pixels;
        int w = image.Width, h = image.Height;

        if (outWidth != w)
        {
            var (b, c, ks) = Coefficients(w, outWidth);
            var dst = new byte[h * outWidth * 3];
            for (int y = 0; y < h; y++)
            {
                int rowIn = y * w * 3, rowOut = y * outWidth * 3;
                for (int xx = 0; xx < outWidth; xx++)
                {
                    int xmin = b[xx * 2], xmax = b[xx * 2 + 1], kofs = xx * ks;
                    int s0 = 1 << (PrecisionBits - 1), s1 = s0, s2 = s0;
                    for (int x = 0; x < xmax; x++)
                    {
                        int p = rowIn + (x + xmin) * 3, kv = c[kofs + x];
                        s0 += src[p] * kv;
                        s1 += src[p + 1] * kv;
                        s2 += src[p + 2] * kv;
                    }
                    int o = rowOut + xx * 3;
                    dst[o] = Clip8(s0);
                    dst[o + 1] = Clip8(s1);
                    dst[o + 2] = Clip8(s2);
                }
            }
            src = dst;
            w = outWidth;
        }

        if (outHeight != h)
        {
            var (b, c, ks) = Coefficients(h, outHeight);
            var dst = new byte[outHeight * w * 3];
            for (int yy = 0; yy < outHeight; yy++)
            {
                int ymin = b[yy * 2], ymax = b[yy * 2 + 1], kofs = yy * ks, rowOut = yy * w * 3;
                for (int xc = 0; xc < w * 3; xc++)
                {
                    int s = 1 << (PrecisionBits - 1);
                    for (int y = 0; y < ymax; y++) s += src[(y + ymin) * w * 3 + xc] * c[kofs + y];
                    dst[rowOut + xc] = Clip8(s);
                }
            }
            src = dst;
            h = outHeight;
        }

        return ReferenceEquals(src, image.Pixels) ? new RgbImage(w, h, (byte[])src.Clone()) : new RgbImage(w, h, src);
    }
}
