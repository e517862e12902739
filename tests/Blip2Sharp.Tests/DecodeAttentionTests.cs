using Blip2Sharp.Modeling;
using Blip2Sharp.Modeling.Layers;
using Blip2Sharp.Modeling.Opt;
using Xunit;
using static TorchSharp.torch;

namespace Blip2Sharp.Tests;

[Collection(ProcessWideSwitchesCollection.Name)]
public class DecodeAttentionTests
{
    /// <summary>Runs body with the managed path on or off (libtorch's ops), and turns it back on.</summary>
    private static T With<T>(bool managed, Func<T> body)
    {
        DecodeAttention.Enabled = managed;
        try
        {
            return body();
        }
        finally
        {
            DecodeAttention.Enabled = true;
        }
    }

    /// <summary>
    /// A prompt of 5 positions (row 0 left-padded by 2), then 4 decoding steps, through tiny-opt's first attention layer:
    /// the managed one-position path against libtorch's ops, output by output, and the cache both leave behind.
    /// </summary>
    [Fact]
    public void OnePositionStepsEqualLibtorchsAttention()
    {
        var opt = GenerationTests.Model("tiny-opt").Opt!;
        var attention = opt.modules().OfType<OptAttention>().First();
        long e = opt.Config.HiddenSize;
        int heads = opt.Config.NumAttentionHeads;
        using var inference = inference_mode();
        var gen = new TorchSharp.torch.Generator(7);
        var prompt = randn([2, 5, e], generator: gen);
        var steps = Enumerable.Range(0, 4).Select(_ => randn([2, 1, e], generator: gen)).ToList();
        var padding = tensor(new long[] { 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 }).reshape(2, 9);

        (List<Tensor> Outputs, bool Managed) Run(bool managed) => With(managed, () =>
        {
            using var cache = new LayerKvCache(16);
            attention.Forward(prompt, AttentionMasks.CausalWithPadding(padding[.., ..5], 5, ScalarType.Float32), cache).Dispose();
            var outputs = new List<Tensor>();
            bool applied = true;
            for (int s = 0; s < steps.Count; s++)
            {
                var mask = AttentionMasks.CausalWithPadding(padding[.., ..(6 + s)], 1, ScalarType.Float32);  // [2, 1, 1, 6 + s]
                applied &= DecodeAttention.Applies(steps[s], mask, cache, heads);
                outputs.Add(attention.Forward(steps[s], mask, cache));
            }
            return (outputs, applied);
        });

        var (reference, libtorchApplied) = Run(managed: false);
        var (managedOut, managedApplied) = Run(managed: true);
        Assert.False(libtorchApplied);
        Assert.True(managedApplied);
        for (int s = 0; s < steps.Count; s++)
        {
            Assert.Equal(reference[s].shape, managedOut[s].shape);
            double diff = (reference[s] - managedOut[s]).abs().max().item<float>();
            double scale = reference[s].abs().max().item<float>();
            Assert.True(diff <= 1e-6 * Math.Max(1, scale), $"step {s}: differ by {diff} (outputs up to {scale})");
        }
    }

    /// <summary>
    /// Softmax over a hand-made cache: one head of dimension 2, keys (1, 0) and (0, 1), query (ln 3, 0) unscaled:
    /// scores ln 3 and 0 plus the new position's own key; weights follow from exp by hand.
    /// </summary>
    [Fact]
    public void WeightsFollowTheSoftmaxOfTheScores()
    {
        using var inference = inference_mode();
        using var cache = new LayerKvCache(4);
        // Two cached positions written through the same path: keys (1, 0) then (0, 1), values (10, 0) then (0, 10).
        DecodeAttention.Forward(zeros(1, 1, 2), tensor(new float[] { 1, 0 }).reshape(1, 1, 2), tensor(new float[] { 10, 0 }).reshape(1, 1, 2),
            zeros(1, 1, 1, 1), cache, heads: 1, scaling: 1.0).Dispose();
        DecodeAttention.Forward(zeros(1, 1, 2), tensor(new float[] { 0, 1 }).reshape(1, 1, 2), tensor(new float[] { 0, 10 }).reshape(1, 1, 2),
            zeros(1, 1, 1, 2), cache, heads: 1, scaling: 1.0).Dispose();
        // New position: key (0, 0) (score 0), value (0, 0); the mask hides position 1 (the (0, 1) key).
        var q = tensor(new float[] { MathF.Log(3), 0 }).reshape(1, 1, 2);
        var mask = tensor(new float[] { 0, float.MinValue, 0 }).reshape(1, 1, 1, 3);
        using var context = DecodeAttention.Forward(q, zeros(1, 1, 2), zeros(1, 1, 2), mask, cache, heads: 1, scaling: 1.0);
        // Scores: ln 3 (position 0), masked (1), 0 (2) → weights 3/4, 0, 1/4 → context 3/4 · (10, 0) = (7.5, 0).
        var c = context.data<float>().ToArray();
        Assert.Equal(7.5f, c[0], 5);
        Assert.Equal(0f, c[1], 5);
        Assert.Equal(3, cache.Length);
    }

    /// <summary>
    /// tiny-t5's decoder (self-attention over the cache with the relative position bias, cross-attention over the
    /// encoder's keys and values): the logits of 5 cached steps with the managed path against libtorch's ops.
    /// </summary>
    [Fact]
    public void T5DecodingStepsEqualLibtorchsAttention()
    {
        var model = GenerationTests.Model("tiny-t5");
        var x = Fixtures.Goldens("tiny-t5");
        using var noGrad = no_grad();
        using var prefix = model.ImagePrefix(x["pixel_values"]);
        var (embeds, mask) = model.MergeImagePrefix(prefix, x["gen_input_ids"], x["gen_attention_mask"]);
        long[][] tokens = [[5, 9], [17, 3], [8, 8], [30, 2], [11, 40]];

        (List<Tensor> Logits, long Calls) Run(bool managed) => With(managed, () =>
        {
            long before = DecodeAttention.Calls;
            using var state = new Generation.T5DecoderState(model.T5!, embeds, mask, 8);
            var logits = new List<Tensor> { state.Next(null) };
            foreach (var step in tokens) logits.Add(state.Next(tensor(step)));
            return (logits, DecodeAttention.Calls - before);
        });

        var (reference, _) = Run(managed: false);
        var (managedLogits, calls) = Run(managed: true);
        int layers = model.T5!.modules().OfType<Modeling.T5.T5Block>().Count() / 2;   // encoder and decoder blocks
        Assert.True(calls >= 2 * layers * tokens.Length, $"managed attention ran {calls} times");
        for (int s = 0; s < reference.Count; s++)
        {
            double diff = (reference[s] - managedLogits[s]).abs().max().item<float>();
            Assert.True(diff <= 1e-5, $"step {s}: logits differ by {diff}");
        }
    }
}
