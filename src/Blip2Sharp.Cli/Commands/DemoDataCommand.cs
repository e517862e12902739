using System.ComponentModel;
using Blip2Sharp.Demo;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Blip2Sharp.Cli.Commands;

public sealed class DemoDataCommand : Command<DemoDataCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("-o|--out <DIR>")]
        [Description("Folder for the images and the JSONL files (train/val/test captions, questions, scenes).")]
        public string Out { get; init; } = "";

        [CommandOption("--seed <S>")]
        [Description("The same seed writes the same dataset.")]
        [DefaultValue(1L)]
        public long Seed { get; init; } = 1;

        [CommandOption("--train <N>")]
        [Description("Training scenes.")]
        [DefaultValue(5000)]
        public int Train { get; init; } = 5000;
        [CommandOption("--val <N>")]
        [Description("Validation scenes.")]
        [DefaultValue(500)]
        public int Val { get; init; } = 500;
        [CommandOption("--test <N>")]
        [Description("Test scenes (no two, and none with a training scene, share a caption-level key).")]
        [DefaultValue(1000)]
        public int Test { get; init; } = 1000;
        [CommandOption("--holdout <N>")]
        [Description("Scenes that hold the colour-shape pair no other split holds (purple triangle).")]
        [DefaultValue(0)]
        public int Holdout { get; init; } = 0;

        [CommandOption("--image-size <PX>")]
        [Description("Rendered image size.")]
        [DefaultValue(96)]
        public int ImageSize { get; init; } = 96;

        public override ValidationResult Validate() =>
            string.IsNullOrWhiteSpace(Out) ? ValidationResult.Error("--out DIR is required.")
            : Train < 0 || Val < 0 || Test < 0 || Holdout < 0 ? ValidationResult.Error("scene counts must be 0 or more.")
            : ImageSize is < 16 or > 1024 ? ValidationResult.Error("--image-size must be between 16 and 1024.")
            : ValidationResult.Success();
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellationToken)
    {
        IReadOnlyDictionary<string, int>? counts = null;
        ResultPrinter.WithProgress(s.Train + s.Val + s.Test + s.Holdout, "rendering scenes", tick =>
            counts = SceneDataset.Write(s.Out, s.Seed, new(s.Train, s.Val, s.Test, s.Holdout), s.ImageSize,
                progress: (_, _) => tick()));
        Blip2Cli.Out($"{s.Out}: {string.Join(", ", counts!.Select(kv => $"{kv.Value} {kv.Key}"))} scenes; captions in train.jsonl, questions in *_qa.jsonl");
        return 0;
    }
}
