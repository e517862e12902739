using Blip2Sharp.Configuration;
using Blip2Sharp.Processing;
using Xunit;
using static TorchSharp.torch;

namespace Blip2Sharp.Tests;

public class PreprocessingTests
{
    /// <summary>(fixture, image file) for every image whose golden tensor named PREFIX.stem exists.</summary>
    private static TheoryData<string, string> ImagesWith(string prefix)
    {
        var data = new TheoryData<string, string>();
        foreach (var c in new[] { "preprocess-224", "preprocess-364" })
        {
            var keys = Fixtures.Goldens(c).Keys.ToHashSet();
            foreach (var f in Directory.GetFiles(Path.Combine(Fixtures.Dir(c), "images")).Order())
            {
                if (keys.Contains(prefix + Path.GetFileNameWithoutExtension(f))) data.Add(c, Path.GetFileName(f));
            }
        }
        return data;
    }

    public static TheoryData<string, string> DecodedImages() => ImagesWith("decoded_rgb.");
    public static TheoryData<string, string> ResizedImages() => ImagesWith("resized_u8.");

    private static BlipImageProcessor Processor(string fixture) =>
        BlipImageProcessor.FromPretrained(Fixtures.Dir(fixture), new ConfigWarnings());

    [Theory]
    [MemberData(nameof(DecodedImages))]
    public void DecodedRgbMatchesPil(string fixture, string file)
    {
        var expected = Fixtures.Goldens(fixture)["decoded_rgb." + Path.GetFileNameWithoutExtension(file)];
        var img = ImageDecoder.DecodeFile(Path.Combine(Fixtures.Dir(fixture), "images", file));
        Assert.Equal(expected.shape, new long[] { img.Height, img.Width, 3 });
        var want = expected.data<byte>().ToArray();
        int maxDiff = want.Zip(img.Pixels, (a, b) => Math.Abs(a - b)).Max();
        // PNG decoding is exact; JPEG decoders may differ by one level (libjpeg-turbo builds).
        Assert.True(maxDiff <= (file.EndsWith(".jpg") ? 1 : 0), $"{file}: max difference {maxDiff}");
    }

    [Theory]
    [MemberData(nameof(ResizedImages))]
    public void ResizedImageMatchesPilBicubic(string fixture, string file)
    {
        var expected = Fixtures.Goldens(fixture)["resized_u8." + Path.GetFileNameWithoutExtension(file)];
        var p = Processor(fixture);
        var resized = p.Resize(ImageDecoder.DecodeFile(Path.Combine(Fixtures.Dir(fixture), "images", file)));
        var want = expected.data<byte>().ToArray();
        Assert.Equal(want.Length, resized.Pixels.Length);
        int maxDiff = want.Zip(resized.Pixels, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(maxDiff <= (file.EndsWith(".jpg") ? 1 : 0), $"{file}: max difference {maxDiff}");
    }

    [Theory]
    [InlineData("preprocess-224")]
    [InlineData("preprocess-364")]
    public void ResizeOfPilDecodedPixelsIsBitExact(string fixture)
    {
        // Resizing alone, fed with PIL's own decode, must be exact for every image, the JPEG included.
        var goldens = Fixtures.Goldens(fixture);
        var p = Processor(fixture);
        int compared = 0;
        foreach (var (key, decoded) in goldens.Where(kv => kv.Key.StartsWith("decoded_rgb.")))
        {
            string stem = key["decoded_rgb.".Length..];
            if (!goldens.TryGetValue("resized_u8." + stem, out var expected)) continue;
            var img = new RgbImage((int)decoded.shape[1], (int)decoded.shape[0], decoded.data<byte>().ToArray());
            Assert.Equal(expected.data<byte>().ToArray(), p.Resize(img).Pixels);
            compared++;
        }
        Assert.True(compared >= 3, $"only {compared} images compared");
    }

    [Theory]
    [InlineData("preprocess-224")]
    [InlineData("preprocess-364")]
    public void PixelValuesMatchTheReference(string fixture)
    {
        var manifest = Fixtures.Manifest(fixture);
        var files = manifest["pixel_values_images"]!.AsArray().Select(n => Path.Combine(Fixtures.Dir(fixture), "images", (string)n!)).ToList();
        using var expected = Fixtures.Goldens(fixture)["pixel_values"];
        var p = Processor(fixture);
        using var actual = p.PreprocessFiles(files);
        Assert.Equal(expected.shape, actual.shape);
        // Exact for PNG; the JPEG's decoder may shift a pixel by one level, which ±1/255/std bounds per element.
        for (int b = 0; b < files.Count; b++)
        {
            double maxAbs = (actual[b] - expected[b]).abs().max().item<float>();
            double tol = files[b].EndsWith(".jpg") ? 1.0 / 255 / 0.26 + 1e-6 : 1e-6;
            Assert.True(maxAbs <= tol, $"{files[b]}: max |diff| {maxAbs}");
        }
    }

    [Fact]
    public void PixelValuesFromPilDecodeAreBitExact()
    {
        // The formula (rescale in float64, normalise in float32) on PIL's resized bytes reproduces pixel_values exactly.
        var goldens = Fixtures.Goldens("preprocess-224");
        var p = Processor("preprocess-224");
        var pv = goldens["pixel_values"];
        var names = Fixtures.Manifest("preprocess-224")["pixel_values_images"]!.AsArray().Select(n => Path.GetFileNameWithoutExtension((string)n!)).ToList();
        for (int b = 0; b < names.Count; b++)
        {
            var r = goldens["resized_u8." + names[b]];
            var chw = p.ToChw(new RgbImage((int)r.shape[1], (int)r.shape[0], r.data<byte>().ToArray()));
            Assert.Equal(pv[b].contiguous().data<float>().ToArray(), chw);
        }
    }
}
