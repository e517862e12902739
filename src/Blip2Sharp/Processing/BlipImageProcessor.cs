using Blip2Sharp.Configuration;
using static TorchSharp.torch;

namespace Blip2Sharp.Processing;

/// <summary>
/// transformers' BlipImageProcessor as BLIP-2 uses it: RGB, PIL-bicubic resize to size × size (no aspect
/// preservation, no crop), rescale by 1/255 (in float64, then float32) and normalise in float32, CHW.
/// Every image is treated as channels-last: the reference guesses channels-first for images 1 or 3 pixels high,
/// which mis-processes (or rejects) them; Blip2Sharp does not reproduce that bug.
/// </summary>
public sealed class BlipImageProcessor(ImageProcessorConfig config, ImageDecodeOptions? decodeOptions = null)
{
    public ImageProcessorConfig Config { get; } = config;
    public ImageDecodeOptions DecodeOptions { get; } = decodeOptions ?? ImageDecodeOptions.Default;

    public static BlipImageProcessor FromPretrained(string folder, ConfigWarnings warnings, ImageDecodeOptions? decodeOptions = null) =>
        new(ImageProcessorConfig.Load(Path.Combine(folder, "preprocessor_config.json"), warnings), decodeOptions);

    /// <summary>The checkpoint's preprocessor_config.json, or the BLIP-2 defaults at its vision tower's size when it has none.</summary>
    public static BlipImageProcessor ForCheckpoint(string folder, Blip2Config config, ConfigWarnings warnings, ImageDecodeOptions? decodeOptions = null) =>
        File.Exists(Path.Combine(folder, "preprocessor_config.json"))
            ? FromPretrained(folder, warnings, decodeOptions)
            : new BlipImageProcessor(ImageProcessorConfig.ForSize(config.VisionConfig.ImageSize), decodeOptions);

    /// <summary>The uint8 image the model's resize produces (the fixtures' resized_u8).</summary>
    public RgbImage Resize(RgbImage image) =>
        Config.DoResize ? PilBicubic.Resize(image, Config.Size.Width, Config.Size.Height) : image;

    /// <summary>Rescaled and normalised CHW float32 values of one resized image.</summary>
    public float[] ToChw(RgbImage resized)
    {
        int hw = resized.Width * resized.Height;
        var outp = new float[3 * hw];
        var mean = Config.ImageMean;
        var std = Config.ImageStd;
        double scale = Config.RescaleFactor;
        var px = resized.Pixels;
        for (int i = 0; i < hw; i++)
        {
            for (int c = 0; c < 3; c++)
            {
                // numpy: image.astype(float64) * scale, cast to float32; then (x - mean_f32) / std_f32 in float32.
                float x = Config.DoRescale ? (float)(px[i * 3 + c] * scale) : px[i * 3 + c];
                if (Config.DoNormalize) x = (x - mean[c]) / std[c];
                outp[c * hw + i] = x;
            }
        }
        return outp;
    }

    /// <summary>pixel_values [B, 3, H, W] float32 for decoded images.</summary>
    public Tensor Preprocess(IReadOnlyList<RgbImage> images)
    {
        if (images.Count == 0) throw new ArgumentException("no images to preprocess.");
        var resized = images.Select(Resize).ToList();
        int h = resized[0].Height, w = resized[0].Width;
        if (resized.Any(r => r.Height != h || r.Width != w))
            throw new ArgumentException("images of different sizes cannot be batched with do_resize = false.");
        var data = new float[resized.Count * 3 * h * w];
        for (int b = 0; b < resized.Count; b++) ToChw(resized[b]).CopyTo(data, b * 3 * h * w);
        return tensor(data, [resized.Count, 3, h, w]); // [B, 3, H, W]
    }

    /// <summary>Decodes and preprocesses image files into pixel_values [B, 3, H, W].</summary>
    public Tensor PreprocessFiles(IReadOnlyList<string> paths) =>
        Preprocess(paths.Select(p => ImageDecoder.DecodeFile(p, DecodeOptions)).ToList());
}
