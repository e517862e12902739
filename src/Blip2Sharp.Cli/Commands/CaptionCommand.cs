using System.ComponentModel;
using Blip2Sharp.Generation;
using Blip2Sharp.Processing;
using Blip2Sharp.Tasks;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Blip2Sharp.Cli.Commands;

public sealed class CaptionCommand : Command<CaptionCommand.Settings>
{
    public sealed class Settings : GenerationSettings
    {
        [CommandArgument(0, "<IMAGE>")]
        [Description("Image files, folders or globs.")]
        public string[] Images { get; init; } = [];

        [CommandOption("-p|--prompt <TEXT>")]
        [Description("Text the caption continues, used verbatim as the LLM prompt (e.g. \"a photo of\"). Default: none (zero-shot captioning).")]
        public string Prompt { get; init; } = "";

        [CommandOption("--batch-size <N>")]
        [Description("Images captioned together in one batch.")]
        [DefaultValue(1)]
        public int BatchSize { get; init; } = 1;

        public override GenerationOptions Defaults => new() { MaxNewTokens = 30 };

        public override ValidationResult Validate() =>
            BatchSize < 1 ? ValidationResult.Error("--batch-size must be at least 1.") : base.Validate();
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken) =>
        ImageTextRunner.Run(settings, settings.Images, (_, _) => settings.Prompt, settings.BatchSize, "captioning", cancellationToken);
}

/// <summary>Runs the pipeline over images in batches; an image that fails to decode is reported and skipped.</summary>
public static class ImageTextRunner
{
    public static int Run(GenerationSettings settings, IEnumerable<string> imageArgs, Func<Blip2Pipeline, string, string> promptFor, int batchSize, string what, CancellationToken ct)
    {
        var images = ImageInputs.Expand(imageArgs);
        var options = settings.ToOptions();
        DemoModel.NoteIfDefault(settings.Model);
        using var pipeline = Blip2Pipeline.FromPretrained(settings.Model, decodeOptions: new ImageDecodeOptions { OnWarning = Blip2Cli.Warn }, quantizeInt8: settings.Quantize == "int8");
        foreach (var w in pipeline.Warnings) Blip2Cli.Warn(w);
        var results = new List<ImageTextResult>();
        var failures = new List<(string, string)>();
        ResultPrinter.WithProgress(images.Count, what, tick =>
        {
            foreach (var chunk in images.Chunk(batchSize))
            {
                var ok = new List<string>();
                foreach (var path in chunk)
                {
                    try
                    {
                        // Decode up front so that one bad file does not sink its batch.
                        ImageDecoder.DecodeFile(path, pipeline.Processor.ImageProcessor.DecodeOptions);
                        ok.Add(path);
                    }
                    catch (Exception e) when (e is Blip2Exception or IOException)
                    {
                        failures.Add((path, e.Message));
                        ImageInputs.ReportUnreadable(e.Message);
                        tick();
                    }
                }
                if (ok.Count == 0) continue;
                results.AddRange(pipeline.Run(ok, ok.Select(path => promptFor(pipeline, path)).ToList(), options, ct));
                foreach (var _ in ok) tick();
            }
        });
        ResultPrinter.Print(results, failures, settings.Json);
        return failures.Count > 0 ? Blip2Cli.InputError : 0;
    }
}
