using Blip2Sharp.Configuration;
using Blip2Sharp.Loading;
using Blip2Sharp.Modeling;
using Blip2Sharp.Modeling.Vision;
using Xunit;
using static TorchSharp.torch;

namespace Blip2Sharp.Tests;

public class VisionModelTests
{
    [Fact]
    public void DroppingTheLastLayerUsesTheSecondLastOutput()
    {
        var config = Blip2Config.Load(Fixtures.Dir("tiny-opt"), new ConfigWarnings());
        using var model = new Blip2VisionModel(config.VisionConfig, ModelOptions.Cpu);
        using var reader = CheckpointReader.Open(Fixtures.Dir("tiny-opt"));
        WeightLoader.Load(model, reader, new WeightMapping { IgnoredPrefixes = ["query_tokens", "qformer.", "language_"] }, "vision_model.");
        var g = new GoldenAssert("tiny-opt");
        using var noGrad = no_grad();
        using var dropped = model.Forward(g.Goldens["pixel_values"], outputHiddenStates: true, dropLastLayers: 1);
        Assert.Equal(2, dropped.HiddenStates!.Count); // embeddings, then layer 0's output
        g.Close("vision_hidden_states.1", dropped.HiddenStates[1]);
        using var full = model.Forward(g.Goldens["pixel_values"]);
        Assert.True((dropped.LastHiddenState - full.LastHiddenState).abs().max().item<float>() > 1e-3);
        Assert.Throws<ArgumentOutOfRangeException>(() => model.Forward(g.Goldens["pixel_values"], dropLastLayers: 2));
    }

    [Theory]
    [InlineData("tiny-opt")]
    [InlineData("tiny-t5")]
    [InlineData("tiny-itm")]
    public void VisionTowerMatchesTheReference(string fixture)
    {
        var config = Blip2Config.Load(Fixtures.Dir(fixture), new ConfigWarnings());
        using var model = new Blip2VisionModel(config.VisionConfig, ModelOptions.Cpu);
        using var reader = CheckpointReader.Open(Fixtures.Dir(fixture));
        WeightLoader.Load(model, reader, new WeightMapping { IgnoredPrefixes = ["query_tokens", "qformer.", "language_", "embeddings.", "vision_projection", "text_projection", "itm_head"] }, "vision_model.");
        model.eval();
        var g = new GoldenAssert(fixture);
        using var noGrad = no_grad();
        using var output = model.Forward(g.Goldens["pixel_values"], outputHiddenStates: true);
        g.Close("vision_last_hidden_state", output.LastHiddenState);
        g.Close("vision_pooler_output", output.PoolerOutput);
        if (fixture != "tiny-itm")
        {
            for (int i = 0; i < output.HiddenStates!.Count; i++) g.Close($"vision_hidden_states.{i}", output.HiddenStates[i]);
        }
    }
}
