using System.ComponentModel;
using System.Diagnostics;
using Blip2Sharp.Demo;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Blip2Sharp.Cli.Commands;

public sealed class DemoTrainCommand : Command<DemoTrainCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("-o|--out <DIR>")]
        [Description("Work folder: data, the unimodal models, the stage-1 and stage-2 checkpoints.")]
        public string Out { get; init; } = "demo-run";

        [CommandOption("--seed <S>")]
        [Description("The same seed rebuilds the same models.")]
        public long Seed { get; init; } = 1;

        [CommandOption("--scenes <N>")]
        [Description("Training scenes (default 5000).")]
        public int? Scenes { get; init; }

        [CommandOption("--steps <N>")]
        [Description("Steps of each of the four trainings (default 1500).")]
        public int? Steps { get; init; }
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellationToken)
    {
        var o = new DemoPipeline.Options { Seed = s.Seed };
        if (s.Scenes is { } n) o = o with { TrainScenes = n };
        if (s.Steps is { } k)
        {
            o = o with
            {
                Vision = o.Vision with { Steps = k }, Text = o.Text with { Steps = k },
                Stage1 = o.Stage1 with { MaxSteps = k, SaveEvery = k }, Stage2 = o.Stage2 with { MaxSteps = k, SaveEvery = k },
            };
        }
        var watch = Stopwatch.StartNew();
        var (retrieval, generation) = DemoPipeline.Run(s.Out, o, m => Console.Error.WriteLine($"[{watch.Elapsed:mm\\:ss}] {m}"));
        Blip2Cli.Out($"stage 1 (retrieval): {retrieval}");
        Blip2Cli.Out($"stage 2 (generation): {generation}");
        Blip2Cli.Out($"done in {watch.Elapsed:mm\\:ss}");
        return 0;
    }
}
