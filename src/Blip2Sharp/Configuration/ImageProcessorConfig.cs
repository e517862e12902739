using System.Text.Json.Serialization;

namespace Blip2Sharp.Configuration;

/// <summary>preprocessor_config.json of BlipImageProcessor, with the BLIP-2 (OpenAI CLIP) defaults.</summary>
public sealed record ImageProcessorConfig
{
    public static readonly float[] ClipMean = [0.48145466f, 0.4578275f, 0.40821073f];
    public static readonly float[] ClipStd = [0.26862954f, 0.26130258f, 0.27577711f];

    [JsonPropertyName("do_convert_rgb")] public bool DoConvertRgb { get; init; } = true;
    [JsonPropertyName("do_normalize")] public bool DoNormalize { get; init; } = true;
    [JsonPropertyName("do_rescale")] public bool DoRescale { get; init; } = true;
    [JsonPropertyName("do_resize")] public bool DoResize { get; init; } = true;
    [JsonPropertyName("image_mean")] public float[] ImageMean { get; init; } = ClipMean;
    [JsonPropertyName("image_std")] public float[] ImageStd { get; init; } = ClipStd;
    /// <summary>PIL resampling filter; 3 = BICUBIC, the only one BLIP-2 uses and the only one implemented.</summary>
    [JsonPropertyName("resample")] public int Resample { get; init; } = 3;
    [JsonPropertyName("rescale_factor")] public double RescaleFactor { get; init; } = 1.0 / 255.0;
    [JsonPropertyName("size")] public ImageSize Size { get; init; } = new();
    [JsonPropertyName("image_processor_type")] public string? ImageProcessorType { get; init; }
    [JsonPropertyName("processor_class")] public string? ProcessorClass { get; init; }

    public static ImageProcessorConfig Load(string file, ConfigWarnings warnings)
    {
        var config = ConfigJson.Bind<ImageProcessorConfig>(ConfigJson.ReadObject(file), file, warnings);
        if (config.Resample != 3)
            throw new InvalidConfigException($"{file}: resample {config.Resample} is not supported; BLIP-2 uses 3 (PIL BICUBIC).");
        if (config.ImageMean.Length != 3 || config.ImageStd.Length != 3)
            throw new InvalidConfigException($"{file}: image_mean and image_std need 3 values (R, G, B).");
        if (config.Size.Height <= 0 || config.Size.Width <= 0)
            throw new InvalidConfigException($"{file}: size must have a positive height and width.");
        return config;
    }

    /// <summary>The defaults at a square size, for callers that give a size instead of a checkpoint.</summary>
    public static ImageProcessorConfig ForSize(int size) => new() { Size = new ImageSize { Height = size, Width = size } };
}

public sealed record ImageSize
{
    [JsonPropertyName("height")] public int Height { get; init; } = 224;
    [JsonPropertyName("width")] public int Width { get; init; } = 224;
}
