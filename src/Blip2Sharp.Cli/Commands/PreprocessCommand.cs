using System.ComponentModel;
using Blip2Sharp.Configuration;
using Blip2Sharp.Loading;
using Blip2Sharp.Processing;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Blip2Sharp.Cli.Commands;

public sealed class PreprocessCommand : Command<PreprocessCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandArgument(0, "<IMAGE>")]
        [Description("Image files (JPEG, PNG, WebP, GIF, BMP), folders or globs, one row of the batch each.")]
        public string[] Images { get; init; } = [];

        [CommandOption("-m|--model <DIR>")]
        [Description("Checkpoint folder whose preprocessor_config.json gives size, mean and std.")]
        public string? Model { get; init; }

        [CommandOption("--size <N>")]
        [Description("Square size in pixels with the BLIP-2 defaults (CLIP mean/std), instead of --model.")]
        public int? Size { get; init; }

        [CommandOption("-o|--out <FILE>")]
        [Description("Output .safetensors file; holds pixel_values [[B, 3, H, W]] float32.")]
        public string Out { get; init; } = "";

        [CommandOption("--max-pixels <N>")]
        [Description("Refuse images with more pixels than this (decompression-bomb guard). Default: 178956970, as PIL.")]
        public long? MaxPixels { get; init; }

        public override ValidationResult Validate()
        {
            if (Images.Length == 0) return ValidationResult.Error("give at least one image.");
            if ((Model is null) == (Size is null)) return ValidationResult.Error("give either --model DIR or --size N.");
            if (Size is <= 0 or > 8192) return ValidationResult.Error("--size must be between 1 and 8192.");
            if (string.IsNullOrWhiteSpace(Out)) return ValidationResult.Error("--out FILE.safetensors is required.");
            if (MaxPixels is <= 0) return ValidationResult.Error("--max-pixels must be positive.");
            return ValidationResult.Success();
        }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var warnings = new ConfigWarnings();
        var decode = new ImageDecodeOptions
        {
            MaxPixels = settings.MaxPixels ?? ImageDecodeOptions.Default.MaxPixels,
            WarnPixels = Math.Min(ImageDecodeOptions.Default.WarnPixels, settings.MaxPixels ?? long.MaxValue),
            OnWarning = Blip2Cli.Warn,
        };
        var processor = settings.Model is not null
            ? BlipImageProcessor.FromPretrained(settings.Model, warnings, decode)
            : new BlipImageProcessor(ImageProcessorConfig.ForSize(settings.Size!.Value), decode);
        foreach (var w in warnings.Items) Blip2Cli.Warn(w);

        var paths = ImageInputs.Expand(settings.Images);
        ImageInputs.RequireReadable(paths, decode);
        using var pixels = processor.PreprocessFiles(paths);
        string? dir = Path.GetDirectoryName(Path.GetFullPath(settings.Out));
        if (dir is not null) Directory.CreateDirectory(dir);
        SafetensorsWriter.Save(settings.Out, [new("pixel_values", pixels)], new Dictionary<string, string> { ["format"] = "pt" });
        Console.Error.WriteLine($"wrote pixel_values [{string.Join(", ", pixels.shape)}] float32 to {settings.Out}");
        return 0;
    }
}
