using System.ComponentModel;
using System.Text.Json;
using System.Text.Json.Nodes;
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
        [DefaultValue(12345L)]
        public long Seed { get; init; } = 12345;

        [CommandOption("--scenes <N>")]
        [Description("Test scenes (default 1000, all distinct).")]
        [DefaultValue(1000)]
        public int Scenes { get; init; } = 1000;

        [CommandOption("--holdout-scenes <N>")]
        [Description("Test scenes that hold the colour-shape pair no training scene holds (purple triangle), scored apart " +
            "(default 300, or --scenes if fewer; 0: none).")]
        public int? HoldoutScenesOption { get; init; }

        public int HoldoutScenes => HoldoutScenesOption ?? Math.Min(300, Scenes);

        [CommandOption("--predictions <FILE>")]
        [Description("Write every scored prediction to FILE.jsonl, one JSON object a line: image, scene (background and " +
            "objects), question (absent for captions), expected, predicted, correct; held-out scenes have \"split\": \"holdout\".")]
        public string? Predictions { get; init; }

        [CommandOption("--json")]
        [Description("Print caption_accuracy, vqa_accuracy, retrieval_t2i_r1, retrieval_i2t_r1 (fractions 0–1) and more as JSON.")]
        public bool Json { get; init; }

        public override ValidationResult Validate() =>
            Scenes is < 2 or > 20000 ? ValidationResult.Error("--scenes must be between 2 and 20000.")
            : HoldoutScenes is < 0 or 1 or > 5000 ? ValidationResult.Error("--holdout-scenes must be 0 or between 2 and 5000.")
            : ValidationResult.Success();
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellationToken)
    {
        var (generation, retrieval) = DemoShowcase.Folders(s.Model);
        var trained = DemoShowcase.TrainKeys(generation);
        string data = Path.Combine(Path.GetTempPath(), $"blip2-demo-eval-{s.Seed}-{Guid.NewGuid():N}");
        int size = DemoShowcase.SceneSize(generation);                          // render as the model was trained
        try
        {
            ResultPrinter.WithProgress(s.Scenes + s.HoldoutScenes, "rendering test scenes", tick =>
                SceneDataset.Write(data, s.Seed, new(Test: s.Scenes, Holdout: s.HoldoutScenes), size, trained, (_, _) => tick()));
            Action<string>? log = s.Json ? null : x => Console.Error.WriteLine($"blip2: {x}…");
            var m = DemoEvaluation.Evaluate(generation, retrieval, data, log: log);
            var h = s.HoldoutScenes > 0 ? DemoEvaluation.Evaluate(generation, retrieval, data, split: "holdout", log: log) : null;
            if (s.Predictions is { } file) WritePredictions(file, m, h);
            if (s.Json)
            {
                var json = Json(m);
                json["image_size"] = size;
                json["seed"] = s.Seed;
                json["excluded_training_keys"] = trained.Count;
                if (h is not null) json["holdout"] = Json(h);
                Blip2Cli.Out(json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
                return 0;
            }
            Print(m, null);
            if (h is not null)
            {
                Blip2Cli.Out($"held-out pair ({h.Images} scenes with a {Scene.HeldOut.Color} " +
                    $"{Scene.HeldOut.Shape.ToString().ToLowerInvariant()}, a pair no training scene holds):");
                Print(h, null);
            }
            foreach (var x in m.Samples.Take(5)) Blip2Cli.Out($"{Path.GetFileName(x.Image)}: {x.Caption}");
            return 0;
        }
        finally
        {
            if (Directory.Exists(data)) Directory.Delete(data, true);
        }
    }

    private static JsonObject Json(DemoMetrics m) => new()
    {
        ["caption_accuracy"] = m.CaptionAccuracy, ["vqa_accuracy"] = m.VqaAccuracy,
        ["retrieval_t2i_r1"] = m.RetrievalT2iR1, ["retrieval_i2t_r1"] = m.RetrievalI2tR1,
        ["retrieval_t2i_r5"] = m.RetrievalT2iR5, ["retrieval_i2t_r5"] = m.RetrievalI2tR5,
        ["vqa_by_kind"] = new JsonObject([.. m.VqaByKind.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))]),
        ["test_images"] = m.Images,
    };

    private static void WritePredictions(string file, DemoMetrics test, DemoMetrics? holdout)
    {
        var lines = test.Predictions.Select(p => p.ToJson().ToJsonString()).ToList();
        if (holdout is not null)
            lines.AddRange(holdout.Predictions.Select(p =>
            {
                var o = p.ToJson();
                o["split"] = "holdout";
                return o.ToJsonString();
            }));
        string? dir = Path.GetDirectoryName(Path.GetFullPath(file));
        if (dir is not null) Directory.CreateDirectory(dir);
        File.WriteAllLines(file, lines);
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
