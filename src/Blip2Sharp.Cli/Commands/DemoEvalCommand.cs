using System.ComponentModel;
using System.Text.Json;
using Blip2Sharp.Demo;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Blip2Sharp.Cli.Commands;

public sealed class DemoEvalCommand : Command<DemoEvalCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("-m|--model <DIR>")]
        [Description("A demo model folder (generation/ and retrieval/), or a `blip2 demo train` work folder. " + DemoModel.HelpNote)]
        public string Model { get; init; } = DemoModel.Folder;

        [CommandOption("--seed <S>")]
        [Description("Seed of the freshly generated test split.")]
        public long Seed { get; init; } = 12345;

        [CommandOption("--scenes <N>")]
        [Description("Test scenes (default 1000, all distinct).")]
        public int Scenes { get; init; } = 1000;

        [CommandOption("--json")]
        [Description("Print caption_accuracy, vqa_accuracy, retrieval_t2i_r1, retrieval_i2t_r1 (fractions 0–1) and more as JSON.")]
        public bool Json { get; init; }

        public override ValidationResult Validate() =>
            Scenes is < 2 or > 20000 ? ValidationResult.Error("--scenes must be between 2 and 20000.") : ValidationResult.Success();
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellationToken)
    {
        var (generation, retrieval) = DemoShowcase.Folders(s.Model);
        string data = Path.Combine(Path.GetTempPath(), $"blip2-demo-eval-{s.Seed}-{Guid.NewGuid():N}");
        int size = DemoShowcase.SceneSize(generation);                          // render as the model was trained
        try
        {
            ResultPrinter.WithProgress(s.Scenes, "rendering test scenes", tick => SceneDataset.Write(data, s.Seed, 0, 0, s.Scenes, size, (_, _) => tick()));
            var m = DemoEvaluation.Evaluate(generation, retrieval, data, log: s.Json ? null : x => Console.Error.WriteLine($"blip2: {x}…"));
            if (s.Json)
            {
                Blip2Cli.Out(JsonSerializer.Serialize(new Dictionary<string, object?>
                {
                    ["caption_accuracy"] = m.CaptionAccuracy, ["vqa_accuracy"] = m.VqaAccuracy, ["retrieval_t2i_r1"] = m.RetrievalT2iR1, ["retrieval_i2t_r1"] = m.RetrievalI2tR1,
                    ["retrieval_t2i_r5"] = m.RetrievalT2iR5, ["retrieval_i2t_r5"] = m.RetrievalI2tR5, ["vqa_by_kind"] = m.VqaByKind, ["test_images"] = m.Images, ["image_size"] = size, ["seed"] = s.Seed,
                }, new JsonSerializerOptions { WriteIndented = true }));
                return 0;
            }
            Print(m, null);
            foreach (var x in m.Samples.Take(5)) Blip2Cli.Out($"{Path.GetFileName(x.Image)}: {x.Caption}");
            return 0;
        }
        finally
        {
            if (Directory.Exists(data)) Directory.Delete(data, true);
        }
    }

    /// <summary>The metrics as a table, with the ablation's column when there is one.</summary>
    public static void Print(DemoMetrics m, DemoMetrics? ablation)
    {
        static string P(double? x) => x is { } v ? $"{v:P1}" : "—";
        var t = new Table().Border(TableBorder.Rounded).AddColumn("metric").AddColumn(new TableColumn($"{m.Images} test scenes").RightAligned());
        if (ablation is not null) t.AddColumn(new TableColumn("without stage 1").RightAligned());
        void Row(string name, double? a, double? b) => t.AddRow(ablation is null ? [name, P(a)] : [name, P(a), P(b)]);
        Row("caption accuracy", m.CaptionAccuracy, ablation?.CaptionAccuracy);
        Row("zero-shot VQA accuracy", m.VqaAccuracy, ablation?.VqaAccuracy);
        foreach (var (k, v) in m.VqaByKind) Row($"  {k}", v, ablation?.VqaByKind.GetValueOrDefault(k));
        Row("text→image R@1", m.RetrievalT2iR1, ablation?.RetrievalT2iR1);
        Row("image→text R@1", m.RetrievalI2tR1, ablation?.RetrievalI2tR1);
        Row("text→image R@5", m.RetrievalT2iR5, ablation?.RetrievalT2iR5);
        Row("image→text R@5", m.RetrievalI2tR5, ablation?.RetrievalI2tR5);
        Blip2Cli.Human.Write(t);
    }
}
