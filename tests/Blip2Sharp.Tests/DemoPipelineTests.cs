using System.Text.Json.Nodes;
using Blip2Sharp.Demo;
using Blip2Sharp.Generation;
using Blip2Sharp.Tasks;
using Blip2Sharp.Training;
using Xunit;

namespace Blip2Sharp.Tests;

public class DemoPipelineTests
{
    [Fact]
    public void TheWholeMethodRunsEndToEndAtToyScale()
    {
        string work = Fixtures.TempDir();
        var o = new DemoPipeline.Options
        {
            Seed = 3, TrainScenes = 24, ValScenes = 4, TestScenes = 4, TextScenes = 24, ImageSize = 24,
            Vision = new VisionPretraining.Options { HiddenSize = 32, Layers = 1, Heads = 2, MlpSize = 64, Steps = 5, BatchSize = 8 },
            Text = new TextPretraining.Options { HiddenSize = 32, Layers = 1, Heads = 2, FfnDim = 64, Steps = 5, BatchSize = 8, RepetitionSteps = 2 },
            QFormerHidden = 32, QFormerLayers = 1, QFormerHeads = 2, Queries = 4,
            Stage1 = new TrainConfig { MaxSteps = 4, BatchSize = 4, WarmupSteps = 0, SaveEvery = 4, LogEvery = 2 },
            Stage2 = new TrainConfig { MaxSteps = 4, BatchSize = 4, WarmupSteps = 0, SaveEvery = 4, LogEvery = 2, PromptAlignment = 5 },
        };
        var log = new List<string>();
        var r = DemoPipeline.Run(work, o with { TestScenes = 6, HoldoutScenes = 4, Ablation = true }, log.Add);
        Assert.Contains(log, l => l.StartsWith("language model loss"));
        Assert.Contains(log, l => l.StartsWith("image encoder loss"));
        Assert.True(File.Exists(Path.Combine(work, "stage1", "metrics.csv")));
        Assert.StartsWith("step,loss,loss_align,lr", File.ReadLines(Path.Combine(work, "stage2", "metrics.csv")).First());
        foreach (var f in new[] { "curves/language_model.png", "curves/image_encoder.png", "grid.png", "report.md", "model/generation/model.safetensors", "model/retrieval/model.safetensors" })
            Assert.True(File.Exists(Path.Combine(work, f)), f);
        Assert.False(File.Exists(Path.Combine(work, "model/retrieval/optimizer.safetensors"))); // training state stays in the checkpoints
        var report = File.ReadAllText(r.Report!);
        Assert.Contains("ablation: stage 2 without stage 1", report);
        Assert.Contains($"{100 * r.Metrics!.CaptionAccuracy:0.0} %", report);
        Assert.Equal(6, r.Metrics.Images);
        Assert.NotNull(r.Ablation);
        Assert.Null(r.Ablation!.RetrievalT2iR1);

        string image = Path.Combine(work, "data", "images", "test", "000000.png");
        using (var pipeline = Blip2Pipeline.FromPretrained(Path.Combine(r.ModelDir, "generation")))
        {
            var caption = pipeline.Run([image], [""], new GenerationOptions { MaxNewTokens = 6 })[0];
            Assert.NotNull(caption.Text);
            Assert.InRange(caption.Sequences[0].GeneratedIds.Count, 1, 6);
        }
        using (var retriever = Blip2Retriever.FromPretrained(Path.Combine(r.ModelDir, "retrieval")))
        using (var images = retriever.EncodeImages([image]))
        using (var texts = retriever.EncodeTexts(["a red circle", "a blue square"]))
            Assert.Equal(new long[] { 1, 2 }, retriever.ItmProbabilities(images, texts).shape);

        string predictions = Path.Combine(Fixtures.TempDir(), "predictions.jsonl");
        var eval = CliRunner.Run("demo", "eval", "--model", work, "--scenes", "6", "--holdout-scenes", "4", "--seed", "4", "--json",
            "--predictions", predictions);
        Assert.True(eval.ExitCode == 0, eval.Stderr);
        var j = System.Text.Json.Nodes.JsonNode.Parse(eval.Stdout)!;
        foreach (var k in new[] { "caption_accuracy", "vqa_accuracy", "retrieval_t2i_r1", "retrieval_i2t_r1" })
            Assert.InRange((double)j[k]!, 0.0, 1.0);
        Assert.Equal(6, (int)j["test_images"]!);
        Assert.Equal(4, (int)j["holdout"]!["test_images"]!);
        // Every prediction, written as the issue asks; no scene shares its key with a training scene of the model.
        var trained = File.ReadLines(Path.Combine(r.ModelDir, "train_keys.txt")).ToHashSet();
        var lines = File.ReadLines(predictions).Select(l => System.Text.Json.Nodes.JsonNode.Parse(l)!).ToList();
        static string Key(System.Text.Json.Nodes.JsonNode s) => (string)s["background"]! + "|" + string.Join("|", s["objects"]!.AsArray()
            .Select(o => $"{o!["size"]} {o["color"]} {o["shape"]} {o["column"]}").Order(StringComparer.Ordinal));
        var trainScenes = File.ReadLines(Path.Combine(work, "data", "train_scenes.jsonl"))
            .Select(l => Key(System.Text.Json.Nodes.JsonNode.Parse(l)!)).ToHashSet();
        Assert.Equal(trainScenes.Order(StringComparer.Ordinal), trained.Order(StringComparer.Ordinal));
        Assert.All(lines, l => Assert.DoesNotContain(Key(l["scene"]!), trained));
        var captions = lines.Where(l => l["question"] is null && l["split"] is null).ToList();
        Assert.Equal(6, captions.Count);
        Assert.Equal((double)j["caption_accuracy"]!, captions.Count(l => (bool)l["correct"]!) / 6.0, 9);
        Assert.All(lines, l => Assert.NotNull(l["expected"]));
        Assert.All(lines, l => Assert.NotNull(l["predicted"]));
        var answers = lines.Where(l => l["question"] is not null && l["split"] is null).ToList();
        Assert.Equal((double)j["vqa_accuracy"]!, answers.Count(l => (bool)l["correct"]!) / (double)answers.Count, 9);
        Assert.Equal(4, lines.Count(l => l["question"] is null && (string?)l["split"] == "holdout"));

        // `blip2 demo` on this model: new scenes, judged against their own truth, written out.
        string show = Fixtures.TempDir();
        var demo = CliRunner.Run("demo", "--model", r.ModelDir, "--scenes", "3", "--seed", "5", "--out", show, "--json");
        Assert.True(demo.ExitCode == 0, demo.Stderr);
        var results = System.Text.Json.Nodes.JsonNode.Parse(demo.Stdout)!.AsArray();
        Assert.Equal(3, results.Count);
        foreach (var x in results)
        {
            var objects = x!["scene"]!["objects"]!.AsArray().Select(o => new SceneObject(Enum.Parse<Shape>((string)o!["shape"]!, true), (string)o["color"]!, (string)o["size"]! == "large", (int)o["column"]!, (int)o["row"]!)).ToList();
            Assert.Equal(DemoEvaluation.CaptionCorrect((string)x["caption"]!, objects), (bool)x["caption_correct"]!);
            Assert.True(File.Exists(Path.Combine(show, "scenes", (string)x["image"]!)));
            Assert.NotEmpty(x["answers"]!.AsArray());
        }
        Assert.True(File.Exists(Path.Combine(show, "grid.png")));
        Assert.True(File.Exists(Path.Combine(show, "results.md")));
    }

    [Fact]
    public void DemoTrainStartsAgainAfterANativeCrashAndFinishes()
    {
        string work = Fixtures.TempDir(), marker = Path.Combine(Fixtures.TempDir(), "crashed");
        var r = CliRunner.RunWith(new Dictionary<string, string> { ["BLIP2_TEST_CRASH_ONCE"] = marker },
            ["demo", "train", "--out", work, "--scenes", "20", "--steps", "3", "--test-scenes", "4", "--seed", "2"]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.True(File.Exists(marker));                                            // the first child did abort
        Assert.Contains("the native library crashed (signal 6, attempt 1 of 4)", r.Stderr);
        Assert.Contains("done in", r.Stdout);
        Assert.True(File.Exists(Path.Combine(work, "model", "generation", "model.safetensors")));
        var phases = JsonNode.Parse(File.ReadAllText(Path.Combine(work, "timings.json")))!.AsArray();
        Assert.Equal(6, phases.Count);                                               // scenes … evaluation, each once
        Assert.All(phases, p => Assert.True((bool)p!["done"]!));
        Assert.Contains("| evaluation |", File.ReadAllText(Path.Combine(work, "report.md")));

        // Run again with another test size: finished phases are skipped and keep their times; the test split is remade.
        var again = CliRunner.Run("demo", "train", "--out", work, "--scenes", "20", "--steps", "3", "--test-scenes", "5", "--seed", "2");
        Assert.True(again.ExitCode == 0, again.Stderr);
        Assert.Contains("5 test scenes", again.Stdout);
        Assert.Equal(5, File.ReadLines(Path.Combine(work, "test-data", "test_scenes.jsonl")).Count());
        var after = JsonNode.Parse(File.ReadAllText(Path.Combine(work, "timings.json")))!.AsArray();
        Assert.Equal((double)phases[1]!["seconds"]!, (double)after[1]!["seconds"]!);   // the language model's
    }

    [Fact]
    public void TheSoftPromptIsAlignedWithTheScenesFirstCaption()
    {
        string dir = Fixtures.TempDir();
        CliRunner.Run("demo", "data", "--out", dir, "--train", "3", "--val", "1", "--test", "1");
        var data = ImageTextData.Load(Path.Combine(dir, "train.jsonl"));
        var first = DemoPipeline.FirstCaptions(data);
        var byImage = data.Pairs.GroupBy(p => p.Image).ToList();
        Assert.Equal(3, byImage.Count);
        foreach (var g in byImage)
        {
            Assert.Equal(3, g.Count());
            Assert.EndsWith(" background", g.First().Caption);                       // "…, on a gray background"
            Assert.All(g, p => Assert.Equal(g.First().Caption, first(p.Caption)));
        }
        Assert.Equal("a caption of another dataset", first("a caption of another dataset"));
    }

    [Fact]
    public void CaptionsAndAnswersAreJudgedExactly()
    {
        var objects = new[] { new SceneObject(Shape.Circle, "red", true, 0, 0), new SceneObject(Shape.Square, "blue", false, 2, 1) };
        Assert.True(DemoEvaluation.CaptionCorrect("a large red circle on the left and a small blue square on the right, on a gray background", objects));
        Assert.True(DemoEvaluation.CaptionCorrect("a white background with a large red circle on the left and a small blue square on the right", objects));
        Assert.False(DemoEvaluation.CaptionCorrect("a large red circle on the left and a large blue square on the right", objects));  // wrong size
        Assert.False(DemoEvaluation.CaptionCorrect("a large red circle on the left and a small blue square in the middle", objects)); // wrong place
        Assert.False(DemoEvaluation.CaptionCorrect("a large red circle on the left, a small blue square on the right and a small green triangle in the middle", objects)); // an extra object
        Assert.True(DemoEvaluation.AnswerCorrect("red", "red"));
        Assert.True(DemoEvaluation.AnswerCorrect(" Red.", "red"));
        Assert.False(DemoEvaluation.AnswerCorrect("blue", "red"));
        Assert.True(DemoEvaluation.AnswerCorrect("red circle", "red circle"));
        // Exact after normalisation: an answer that merely starts with the expected words does not count.
        Assert.False(DemoEvaluation.AnswerCorrect("red circle", "red"));
        Assert.False(DemoEvaluation.AnswerCorrect("two objects", "two"));
        Assert.True(DemoEvaluation.AnswerCorrect("2", "two"));
        Assert.True(DemoEvaluation.AnswerCorrect("the red one", "red 1"));
    }
}
