using Blip2Sharp.Demo;
using Blip2Sharp.Modeling;
using Blip2Sharp.Modeling.Vision;
using Xunit;
using static TorchSharp.torch;

namespace Blip2Sharp.Tests;

public class VisionPretrainingTests
{
    [Fact]
    public void TargetsFollowTheScene()
    {
        var scene = new Scene("white", [new SceneObject(Shape.Triangle, "blue", true, 2, 1)]);
        var t = VisionPretraining.Targets([scene]);
        Assert.Equal(new long[] { 0, -100, -100, -100, -100 }, Enumerable.Range(0, 5).Select(k => t[0, 0, k]));
        Assert.Equal(new long[] { 1, 2, 2, 1, 1 }, Enumerable.Range(0, 5).Select(k => t[0, 2, k])); // triangle, blue (index 2), large, row 1
    }

    [Fact]
    public void TheImageEncoderLearnsSceneAttributesAndReloads()
    {
        var options = new VisionPretraining.Options { ImageSize = 32, PatchSize = 8, HiddenSize = 32, Layers = 2, Heads = 2, MlpSize = 64, Steps = 200, BatchSize = 16, Lr = 1e-2 };
        using var vit = new Blip2VisionModel(VisionPretraining.Config(options), ModelOptions.Cpu);
        var (first, last) = VisionPretraining.Train(vit, options);
        Assert.True(last < first - 0.25, $"loss {first:F3} → {last:F3}"); // chance ≈ 5.37 (ln2 + ln3 + ln6 + ln2 + ln3); class priors alone give ≈ 5.32
        string dir = Fixtures.TempDir();
        VisionPretraining.Save(vit, dir);
        using var back = VisionPretraining.Load(dir);
        using var noGrad = no_grad();
        var x = randn(1, 3, 32, 32);
        using var a = vit.Forward(x);
        using var b = back.Forward(x);
        Assert.Equal(0f, (a.LastHiddenState - b.LastHiddenState).abs().max().item<float>());
    }
}
