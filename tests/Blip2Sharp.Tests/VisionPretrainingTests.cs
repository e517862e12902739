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
        Assert.Equal(new long[] { 0, -100, -100, -100, 0, 0 }, Enumerable.Range(0, 6).Select(k => t[0, 0, k]));
        Assert.Equal(new long[] { 1, 2, 2, 1, 2, 1 }, Enumerable.Range(0, 6).Select(k => t[0, 5, k])); // cell 5 = row 1, column 2: triangle, blue (index 2), large
    }

    [Fact]
    public void TheImageEncoderLearnsSceneAttributesAndReloads()
    {
        var options = new VisionPretraining.Options { ImageSize = 24, PatchSize = 8, HiddenSize = 32, Layers = 2, Heads = 2, MlpSize = 64, Steps = 200, BatchSize = 16, Lr = 1e-2 };
        using var vit = new Blip2VisionModel(VisionPretraining.Config(options), ModelOptions.Cpu);
        var (first, last) = VisionPretraining.Train(vit, options);
        Assert.True(last < first - 0.25, $"loss {first:F3} → {last:F3}"); // chance ≈ 7.87 (count ln4 + presence ln2 + shape ln3 + colour ln6 + size ln2 + column ln3 + row ln3)
        string dir = Fixtures.TempDir();
        VisionPretraining.Save(vit, dir);
        using var back = VisionPretraining.Load(dir);
        using var noGrad = no_grad();
        var x = randn(1, 3, 24, 24);
        using var a = vit.Forward(x);
        using var b = back.Forward(x);
        Assert.Equal(0f, (a.LastHiddenState - b.LastHiddenState).abs().max().item<float>());
    }
}
