using System.Text.Json.Nodes;
using Blip2Sharp.Modeling;
using Blip2Sharp.Processing.Tokenizers;
using Blip2Sharp.Training;
using Xunit;
using static TorchSharp.torch;

namespace Blip2Sharp.Tests;

/// <summary>
/// Training equal to LAVIS: losses and the gradient of every trainable tensor against the fixtures made by running
/// LAVIS's own model code (train-stage1, train-stage2-opt, train-stage2-t5), in eval mode with the drawn hard
/// negatives given, with each fixture's tolerances (per tensor for gradients).
/// </summary>
[Collection(GlobalRngCollection.Name)]
public class LavisTrainingTests
{
    private sealed class Golden(string fixture)
    {
        public Dictionary<string, Tensor> X { get; } = Fixtures.Goldens(fixture);
        public JsonObject Manifest { get; } = Fixtures.Manifest(fixture);
        private JsonObject Tolerance => Manifest["tolerance"]!.AsObject();
        private double Rtol => (double)Tolerance["recommended_rtol"]!;

        private double GradAtol(string name)
        {
            var perTensor = Tolerance.FirstOrDefault(kv => kv.Key.StartsWith("recommended_atol_per_grad_tensor")).Value;
            return perTensor?[name] is { } n ? (double)n : (double)Tolerance["recommended_atol"]!["grads"]!;
        }

        public void Loss(string name, Tensor actual)
        {
            double atol = (double)Tolerance["recommended_atol"]!["losses"]!;
            double want = X[name].item<float>(), got = actual.item<float>();
            Assert.True(Math.Abs(got - want) <= atol + Rtol * Math.Abs(want), $"{name}: {got} against LAVIS's {want}");
        }

        /// <summary>One gradient (golden key, e.g. rep.grad.NAME) with its per-tensor tolerance.</summary>
        public void CloseGradient(string key, Tensor actual)
        {
            string name = key[(key.IndexOf("grad.", StringComparison.Ordinal) + "grad.".Length)..];
            using var diff = (actual.to(ScalarType.Float64) - X[key].to(ScalarType.Float64)).abs();
            using var bound = X[key].to(ScalarType.Float64).abs() * Rtol + GradAtol(name);
            Assert.True((diff - bound).max().item<double>() <= 0, $"{key}: max |diff| {diff.max().item<double>():E3}");
        }

        /// <summary>Every golden gradient under the prefix, by checkpoint name, against the parameters' gradients.</summary>
        public int Gradients(string prefix, IReadOnlyDictionary<string, TorchSharp.Modules.Parameter> parameters)
        {
            int n = 0;
            foreach (var key in X.Keys.Where(k => k.StartsWith(prefix)))
            {
                string name = key[prefix.Length..];
                Assert.True(parameters.TryGetValue(name, out var p), $"LAVIS trains {name}; the port has no such trainable tensor");
                Assert.True(p!.grad is not null, $"{name}: no gradient");
                using var diff = (p.grad!.to(ScalarType.Float64) - X[key].to(ScalarType.Float64)).abs();
                using var bound = X[key].to(ScalarType.Float64).abs() * Rtol + GradAtol(name);
                double excess = (diff - bound).max().item<double>();
                Assert.True(excess <= 0, $"{key}: max |diff| {diff.max().item<double>():E3} (atol {GradAtol(name):E1})");
                n++;
            }
            return n;
        }
    }

    private static (Stage1Objective Objective, Dictionary<string, TorchSharp.Modules.Parameter> Trainable) Stage1()
    {
        string dir = Fixtures.Dir("train-stage1");
        var model = Blip2ForImageTextRetrieval.FromPretrained(dir);
        var tokenizer = Tokenizer.FromPretrained(dir);
        var objective = new Stage1Objective(model, tokenizer.BosTokenId!.Value, tokenizer.PadTokenId!.Value);
        objective.LoadHeads(Path.Combine(dir, "itg_head.safetensors"));
        objective.eval();                                                         // the fixture: dropout off
        // The fixture names tensors as model.safetensors and itg_head.safetensors do; the objective adds "model.".
        var trainable = objective.named_parameters().Where(p => p.parameter.requires_grad)
            .ToDictionary(p => p.name.StartsWith("model.") ? p.name["model.".Length..] : p.name, p => p.parameter);
        return (objective, trainable);
    }

    private static (long[], long[]) Negatives(Golden g, string prefix) =>
        (g.X[prefix + "itm_neg_image_idx"].data<long>().ToArray(), g.X[prefix + "itm_neg_text_idx"].data<long>().ToArray());

    /// <summary>The fixture's batch (prefix "" or "rep.") with its drawn negatives; its image ids when asked.</summary>
    private static Stage1Losses Forward(Stage1Objective objective, Golden g, string prefix = "", bool imageIds = false) =>
        objective.Forward(g.X[prefix + "pixel_values"], g.X[prefix + "input_ids"], g.X[prefix + "attention_mask"],
            new Generator(0), imageIds ? g.X[prefix + "image_id"] : null, Negatives(g, prefix));

    /// <summary>loss_itc, loss_itm and loss_itg under the prefix against LAVIS's; returns their sum, also checked.</summary>
    private static Tensor CheckStage1Losses(Golden g, string prefix, Stage1Losses losses)
    {
        g.Loss(prefix + "loss_itc", losses.Itc);
        g.Loss(prefix + "loss_itm", losses.Itm);
        g.Loss(prefix + "loss_itg", losses.Itg);
        var total = losses.Total;
        g.Loss(prefix + "loss", total);
        return total;
    }

    [Theory]
    [InlineData("")]
    [InlineData("rep.")]                                                         // a repeated image id
    public void Stage1LossesAndEveryGradientEqualLavis(string prefix)
    {
        var g = new Golden("train-stage1");
        var (objective, trainable) = Stage1();
        using var losses = Forward(objective, g, prefix, imageIds: prefix == "rep.");
        CheckStage1Losses(g, prefix, losses).backward();
        // Every trainable tensor of LAVIS has its gradient checked, and the port trains nothing LAVIS does not.
        Assert.Equal(trainable.Count, g.Gradients(prefix + "grad.", trainable));
        if (prefix != "rep.") return;
        // Without the ids, the same batch gives LAVIS's other ITC value.
        using var plain = Forward(objective, g, "rep.");
        g.Loss("rep.loss_itc_without_image_id", plain.Itc);
    }

    private static (Stage2Objective Objective, Dictionary<string, TorchSharp.Modules.Parameter> Trainable) Stage2(string fixture,
        string prompt = "")
    {
        string dir = Fixtures.Dir(fixture);
        var model = Blip2ForConditionalGeneration.FromPretrained(dir);
        var objective = new Stage2Objective(model, Tokenizer.FromPretrained(dir)) { Prompt = prompt };
        model.eval();                                                             // the fixture: dropout off
        var trainable = model.named_parameters().Where(p => p.parameter.requires_grad).ToDictionary(p => p.name, p => p.parameter);
        return (objective, trainable);
    }

    [Theory]
    [InlineData("")]
    [InlineData("prompt.")]
    public void Stage2OptLossAndEveryGradientEqualLavis(string prefix)
    {
        var g = new Golden("train-stage2-opt");
        string prompt = prefix == "" ? "" : (string)g.Manifest["prompt"]!;
        var (objective, trainable) = Stage2("train-stage2-opt", prompt);
        // LAVIS's text_input: the caption (the prompt, when there is one, is put in front by the objective).
        var texts = g.Manifest["texts"]!.AsArray().Select(t => (string)t!).ToList();
        var loss = objective.Loss(g.X["pixel_values"], texts);
        g.Loss(prefix + "loss", loss);
        loss.backward();
        Assert.Equal(trainable.Count, g.Gradients(prefix + "grad.", trainable));
    }

    [Theory]
    [InlineData("")]
    [InlineData("prefix.")]
    public void Stage2FlanT5LossAndEveryGradientEqualLavis(string prefix)
    {
        var g = new Golden("train-stage2-t5");
        var (objective, trainable) = Stage2("train-stage2-t5");
        static List<string> Texts(JsonNode node) => node is JsonArray a ? [.. a.Select(t => (string)t!)] : [];
        var inputs = Texts(g.Manifest[prefix + "text_input"]!);
        var outputs = Texts(g.Manifest[prefix + "text_output"]!);
        Assert.Equal(3, outputs.Count);
        var loss = objective.T5Loss(g.X["pixel_values"], inputs, outputs);
        g.Loss(prefix + "loss", loss);
        loss.backward();
        Assert.Equal(trainable.Count, g.Gradients(prefix + "grad.", trainable));
        if (prefix == "")
        {
            // The trainer's path for captions: text_input "" for every caption, as LAVIS's caption datasets give it.
            Assert.All(inputs, t => Assert.Equal("", t));
            using var noGrad = no_grad();
            g.Loss("loss", objective.Loss(g.X["pixel_values"], outputs));
        }
    }

    [Fact]
    public void OneAdamWStepWithLavissGroupsGivesItsParameters()
    {
        var g = new Golden("train-stage1");
        var (objective, trainable) = Stage1();
        using var losses = Forward(objective, g);
        losses.Total.backward();
        // The groups LAVIS made (golden.json adamw_step.param_groups): every tensor in the group of its weight decay.
        using var adamw = new AdamW(trainable.Select(kv => (kv.Key, kv.Value))) { WeightDecay = 0.05 };
        var decayed = g.Manifest["adamw_step"]!["param_groups"]!.AsArray()
            .Where(x => (double)x!["weight_decay"]! > 0).SelectMany(x => x!["params"]!.AsArray().Select(n => (string)n!)).ToHashSet();
        Assert.Equal(decayed.Order(), adamw.Parameters.Where(p => p.Decay).Select(p => p.Name).Order());
        Assert.Equal(trainable.Count, adamw.Parameters.Count);
        adamw.Update((double)g.Manifest["adamw_step"]!["lr"]!);
        int n = 0;
        foreach (var key in g.X.Keys.Where(k => k.StartsWith("adamw_step.")))
        {
            var after = trainable[key["adamw_step.".Length..]];
            double diff = (after.detach() - g.X[key]).abs().max().item<float>();
            Assert.True(diff <= 1e-6, $"{key}: max |diff| {diff:E3}");
            n++;
        }
        Assert.Equal(8, n);
    }

    [Fact]
    public void TheLearningRateFollowsLavissTables()
    {
        // stage 1: warm-up 5,000 steps, stage 2: 2,000; init 1e-4, min 1e-5, warmup_lr 1e-6, 10 epochs.
        var tables = g_schedule();
        foreach (var (name, warmup) in new[] { ("lr_table_stage1", 5000), ("lr_table_stage2", 2000) })
        {
            var schedule = new LavisLrSchedule(1e-4, 1e-5, 1e-6, warmup, 10);
            var rows = tables.First(kv => kv.Key.StartsWith(name)).Value!.AsArray();
            Assert.True(rows.Count >= 10);
            foreach (var r in rows)
                Assert.Equal((double)r!["lr"]!, schedule.At((int)r["epoch"]!, (int)r["step_in_epoch"]!), 12);
        }
        // Counted in steps over epochs of 3 steps: epoch 1 starts at step 3.
        Assert.Equal(new LavisLrSchedule(1e-4, 1e-5, 1e-6, 5000, 10).At(1, 0), new LavisLrSchedule(1e-4, 1e-5, 1e-6, 5000, 10).AtStep(3, 3));

        static JsonObject g_schedule() => Fixtures.Manifest("train-stage1")["schedule_and_optimizer"]!.AsObject();
    }

    [Theory]
    [InlineData("train-stage1", null)]
    [InlineData("train-stage2-opt", "a photo of")]
    [InlineData("train-stage2-t5", null)]
    public void DumpGivesLavissLossesAndGradientsFromTheFixturesInputs(string fixture, string? prompt)
    {
        var g = new Golden(fixture);
        string outFile = Path.Combine(Fixtures.TempDir(), "dump.safetensors");
        var args = new List<string> { "dump", "--model", Fixtures.Dir(fixture), "--inputs",
            Path.Combine(Fixtures.Dir(fixture), "golden.safetensors"), "--out", outFile };
        if (prompt is not null) args.AddRange(["--prompt", prompt]);
        var r = CliRunner.Run([.. args]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var file = Loading.SafetensorsFile.Open(outFile);
        var dumped = file.Entries.ToDictionary(e => e.Name, e => file.ReadTensor(e.Name));
        var losses = g.X.Keys.Where(k => k == "loss" || k.EndsWith(".loss") || k.Contains("loss_it")).Where(k => !k.Contains("without")
            && !k.Contains("hf_legacy")).ToList();
        Assert.NotEmpty(losses);
        foreach (var name in losses)
        {
            Assert.True(dumped.ContainsKey(name), $"{name} not dumped");
            g.Loss(name, dumped[name]);
        }
        var grads = g.X.Keys.Where(k => k.StartsWith("grad.") || k.Contains(".grad.")).ToList();
        Assert.NotEmpty(grads);
        foreach (var key in grads)
        {
            Assert.True(dumped.ContainsKey(key), $"{key} not dumped");
            g.CloseGradient(key, dumped[key]);
        }
    }

    [Fact]
    public void PaddingTheTextToLavissThirtyTwoColumnsChangesNothing()
    {
        // LAVIS pads stage-1 text to 32 columns; the trainer pads to the longest caption: padding columns change nothing
        // (here 8 more, the fixture's longest caption filling all 32).
        var g = new Golden("train-stage1");
        var (objective, _) = Stage1();
        using var noGrad = no_grad();
        var ids = cat([g.X["input_ids"], zeros(4, 8, dtype: ScalarType.Int64)], 1);            // [PAD] is id 0
        var mask = cat([g.X["attention_mask"], zeros(4, 8, dtype: ScalarType.Int64)], 1);
        using var trimmed = objective.Forward(g.X["pixel_values"], ids, mask, new Generator(0), negatives: Negatives(g, ""));
        CheckStage1Losses(g, "", trimmed);
    }

    [Fact]
    public void TrainingModeLeavesTheFrozenLanguageModelInTrainModeAsLavis()
    {
        var (objective, _) = Stage2("train-stage2-opt");
        objective.TrainMode();
        Assert.True(objective.Model.Opt!.training);                           // its dropout on, as in LAVIS
        Assert.False(objective.Model.VisionModel.training);                  // the ViT in eval (disabled_train)
        Assert.True(objective.Model.QFormer.training);
        Assert.All(objective.Model.Opt.parameters(), p => Assert.False(p.requires_grad));
    }
}
