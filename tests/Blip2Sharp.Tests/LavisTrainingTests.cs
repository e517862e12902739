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

    [Fact]
    public void Stage1LossesAndEveryGradientEqualLavis()
    {
        var g = new Golden("train-stage1");
        var (objective, trainable) = Stage1();
        using var losses = objective.Forward(g.X["pixel_values"], g.X["input_ids"], g.X["attention_mask"], new Generator(0),
            negatives: Negatives(g, ""));
        g.Loss("loss_itc", losses.Itc);
        g.Loss("loss_itm", losses.Itm);
        g.Loss("loss_itg", losses.Itg);
        var total = losses.Total;
        g.Loss("loss", total);
        total.backward();
        // Every trainable tensor of LAVIS has its gradient checked, and the port trains nothing LAVIS does not.
        int checkedGrads = g.Gradients("grad.", trainable);
        Assert.Equal(trainable.Count, checkedGrads);
    }

    [Fact]
    public void Stage1WithARepeatedImageIdEqualsLavis()
    {
        var g = new Golden("train-stage1");
        var (objective, trainable) = Stage1();
        using var losses = objective.Forward(g.X["rep.pixel_values"], g.X["rep.input_ids"], g.X["rep.attention_mask"],
            new Generator(0), imageIds: g.X["rep.image_id"], negatives: Negatives(g, "rep."));
        g.Loss("rep.loss_itc", losses.Itc);
        g.Loss("rep.loss_itm", losses.Itm);
        g.Loss("rep.loss_itg", losses.Itg);
        var total = losses.Total;
        g.Loss("rep.loss", total);
        total.backward();
        Assert.Equal(trainable.Count, g.Gradients("rep.grad.", trainable));
        // Without the ids, the same batch gives LAVIS's other ITC value.
        using var plain = objective.Forward(g.X["rep.pixel_values"], g.X["rep.input_ids"], g.X["rep.attention_mask"],
            new Generator(0), negatives: Negatives(g, "rep."));
        g.Loss("rep.loss_itc_without_image_id", plain.Itc);
    }
}
