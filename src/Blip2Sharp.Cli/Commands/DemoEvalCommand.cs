using System.ComponentModel;
using System.Text.Json;
using Blip2Sharp.Demo;
using Blip2Sharp.Training;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Blip2Sharp.Cli.Commands;

public sealed class DemoEvalCommand : Command<DemoEvalCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("-m|--model <DIR>")]
        [Description("A demo folder made by `blip2 demo train` (its stage1/ and stage2/ checkpoints are used).")]
        public string Model { get; init; } = "";

        [CommandOption("--seed <S>")]
        [Description("Seed of the freshly generated test split.")]
        public long Seed { get; init; } = 12345;

        [CommandOption("--scenes <N>")]
        [Description("Test scenes (default 1000).")]
        public int Scenes { get; init; } = 1000;

        [CommandOption("--json")]
        [Description("Print caption_accuracy, vqa_accuracy, retrieval_t2i_r1, retrieval_i2t_r1 (fractions) as JSON.")]
        public bool Json { get; init; }

        public override ValidationResult Validate() =>
            string.IsNullOrWhiteSpace(Model) ? ValidationResult.Error("--model DIR is required (a folder made by `blip2 demo train`).")
            : Scenes < 1 ? ValidationResult.Error("--scenes must be at least 1.")
            : ValidationResult.Success();
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellationToken)
    {
        string stage1 = Trainer.LatestCheckpoint(Path.Combine(s.Model, "stage1")) ?? throw new DirectoryNotFoundException($"{s.Model}: no stage1 checkpoint; run `blip2 demo train --out {s.Model}` first.");
        string stage2 = Trainer.LatestCheckpoint(Path.Combine(s.Model, "stage2")) ?? throw new DirectoryNotFoundException($"{s.Model}: no stage2 checkpoint.");
        string data = Path.Combine(Path.GetTempPath(), $"blip2-demo-eval-{s.Seed}-{Guid.NewGuid():N}");
        try
        {
            SceneDataset.Write(data, s.Seed, 0, 0, s.Scenes);
            var m = DemoEvaluation.Evaluate(stage2, stage1, data);
            if (s.Json)
            {
                Blip2Cli.Out(JsonSerializer.Serialize(new Dictionary<string, object>
                {
                    ["caption_accuracy"] = m.CaptionAccuracy, ["vqa_accuracy"] = m.VqaAccuracy, ["retrieval_t2i_r1"] = m.RetrievalT2iR1, ["retrieval_i2t_r1"] = m.RetrievalI2tR1,
                    ["retrieval_t2i_r5"] = m.RetrievalT2iR5, ["retrieval_i2t_r5"] = m.RetrievalI2tR5, ["vqa_by_kind"] = m.VqaByKind, ["test_images"] = m.Images, ["seed"] = s.Seed,
                }, new JsonSerializerOptions { WriteIndented = true }));
                return 0;
            }
            var t = new Table().Border(TableBorder.Rounded).AddColumn("metric").AddColumn(new TableColumn("value").RightAligned());
            t.AddRow("caption accuracy", $"{m.CaptionAccuracy:P1}");
            t.AddRow("zero-shot VQA accuracy", $"{m.VqaAccuracy:P1}");
            foreach (var (k, v) in m.VqaByKind) t.AddRow($"  {k}", $"{v:P1}");
            t.AddRow("text→image R@1 / R@5", $"{m.RetrievalT2iR1:P1} / {m.RetrievalT2iR5:P1}");
            t.AddRow("image→text R@1 / R@5", $"{m.RetrievalI2tR1:P1} / {m.RetrievalI2tR5:P1}");
            Blip2Cli.Human.Write(t);
            foreach (var (img, cap) in m.Samples.Take(5)) Blip2Cli.Out($"{Path.GetFileName(img)}: {cap}");
            return 0;
        }
        finally
        {
            if (Directory.Exists(data)) Directory.Delete(data, true);
        }
    }
}
