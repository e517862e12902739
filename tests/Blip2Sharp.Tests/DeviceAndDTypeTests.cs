using Blip2Sharp.Generation;
using Blip2Sharp.Modeling;
using Xunit;
using static TorchSharp.torch;

namespace Blip2Sharp.Tests;

/// <summary>
/// dtype as a parameter: a float64 model computes the reference's logits and greedy and beam ids (the fixtures record
/// that the float64 reference gives the same ids). Devices: on the meta device only construction is tested (the
/// full-size manifests, ManifestTests): this libtorch has no meta kernel for convolution or layer norm, so no forward
/// runs there; CUDA is not tested: this machine has no GPU.
/// </summary>
public class DeviceAndDTypeTests
{
    [Theory]
    [InlineData("tiny-opt")]
    [InlineData("tiny-t5")]
    public void AFloat64ModelGivesTheReferenceLogitsAndGreedyIds(string fixture)
    {
        var g = new GoldenAssert(fixture);
        var x = g.Goldens;
        using var model = Blip2ForConditionalGeneration.FromPretrained(Fixtures.Dir(fixture),
            ModelOptions.Cpu.WithDType(ScalarType.Float64));
        Assert.Equal(ScalarType.Float64, model.VisionModel.parameters().First().dtype);
        using var noGrad = no_grad();
        using var o = model.Forward(x["pixel_values"], x["input_ids"], x["attention_mask"], x["labels"]);
        Assert.Equal(ScalarType.Float64, o.Logits.dtype);
        g.Close("logits", o.Logits);
        var gen = new Blip2Generator(model);
        foreach (int beams in new[] { 1, 3 })
        {
            string call = beams == 1 ? "gen_greedy_prompt" : "gen_beam";
            var options = GenerationTests.OptionsOf(Fixtures.Manifest(fixture), call);
            var result = gen.Generate(x["pixel_values"], x["gen_input_ids"], x["gen_attention_mask"], options);
            var rows = Enumerable.Range(0, 2).Select(r => x[call][r].data<long>().ToArray()).ToArray();
            Assert.Equal(rows, GenerationTests.AsReference(gen, result));
        }
    }
}
