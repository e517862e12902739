using System.ComponentModel;
using Blip2Sharp.Demo;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Blip2Sharp.Cli.Commands;

public sealed class DemoTrainCommand : Command<DemoTrainCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("-o|--out <DIR>")]
        [Description("Work folder: data, the unimodal models, stage1/ and stage2/ checkpoints, model/ (the demo model: generation/ and retrieval/), report.md.")]
        [DefaultValue("demo-run")]
        public string Out { get; init; } = "demo-run";

        [CommandOption("--seed <S>")]
        [Description("The same seed rebuilds the same models.")]
        [DefaultValue(1L)]
        public long Seed { get; init; } = 1;

        [CommandOption("--scenes <N>")]
        [Description("Training scenes (default 5000).")]
        public int? Scenes { get; init; }

        [CommandOption("--steps <N>")]
        [Description("Steps of each of the four trainings (default: each training's own).")]
        public int? Steps { get; init; }

        [CommandOption("--test-scenes <N>")]
        [Description("Scenes of the evaluation's test split (default 1000).")]
        public int? TestScenes { get; init; }

        [CommandOption("--no-eval")]
        [Description("Skip the evaluation and the report.")]
        public bool NoEval { get; init; }

        [CommandOption("--ablation")]
        [Description("Also train stage 2 without stage 1 and evaluate it (the paper's Figure 5 in miniature); adds its row to the report.")]
        public bool Ablation { get; init; }

        public override ValidationResult Validate() =>
            Scenes is < 10 ? ValidationResult.Error("--scenes must be at least 10.")
            : Steps is < 1 ? ValidationResult.Error("--steps must be at least 1.")
            : TestScenes is < 2 ? ValidationResult.Error("--test-scenes must be at least 2.")
            : ValidationResult.Success();
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellationToken)
    {
        if (!NativeCrashRestart.IsChild) return NativeCrashRestart.Supervise(attempts: 4, m => Console.Error.WriteLine($"[{Elapsed:mm\\:ss}] {m}"));
        NativeCrashRestart.CrashOnceIfAsked();
        var o = new DemoPipeline.Options { Seed = s.Seed, Evaluate = !s.NoEval, Ablation = s.Ablation };
        if (s.Scenes is { } n) o = o with { TrainScenes = n };
        // A smaller test split (toy runs) takes a held-out split of the same size at most.
        if (s.TestScenes is { } t) o = o with { TestScenes = t, HoldoutScenes = Math.Min(o.HoldoutScenes, t) };
        if (s.Steps is { } k)
        {
            o = o with
            {
                Vision = o.Vision with { Steps = k }, Text = o.Text with { Steps = k, RepetitionSteps = k / 3 },
                Stage1 = o.Stage1 with { MaxSteps = k, SaveEvery = k }, Stage2 = o.Stage2 with { MaxSteps = k, SaveEvery = k },
            };
        }
        var r = DemoPipeline.Run(s.Out, o, m => Console.Error.WriteLine($"[{Elapsed:mm\\:ss}] {m}"));
        Blip2Cli.Out($"demo model: {r.ModelDir} (generation/ and retrieval/)");
        if (r.Metrics is { } m) DemoEvalCommand.Print(m, r.Ablation);
        if (r.Report is { } report) Blip2Cli.Out($"report: {report}");
        Blip2Cli.Out($"done in {Elapsed:mm\\:ss}");
        return 0;
    }

    /// <summary>Time since the command started, across restarts after a native crash.</summary>
    private static TimeSpan Elapsed => DateTimeOffset.UtcNow - NativeCrashRestart.Started;
}
