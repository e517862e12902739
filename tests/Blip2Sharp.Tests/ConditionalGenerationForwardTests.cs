using Blip2Sharp.Modeling;
using Xunit;
using static TorchSharp.torch;

namespace Blip2Sharp.Tests;

/// <summary>Blip2ForConditionalGeneration (and Blip2Model's feature methods) against the reference's goldens.</summary>
public class ConditionalGenerationForwardTests
{
    [Theory]
    [InlineData("tiny-opt")]
    [InlineData("tiny-t5")]
    public void ForwardMatchesEveryGolden(string fixture)
    {
        var g = new GoldenAssert(fixture);
        var x = g.Goldens;
        using var model = Blip2ForConditionalGeneration.FromPretrained(Fixtures.Dir(fixture));
        using var noGrad = no_grad();
        using var o = model.Forward(x["pixel_values"], x["input_ids"], x["attention_mask"], x["labels"], outputHiddenStates: true);
        g.Close("vision_last_hidden_state", o.Vision.LastHiddenState);
        g.Close("vision_pooler_output", o.Vision.PoolerOutput);
        g.Close("qformer_last_hidden_state", o.QFormer.LastHiddenState);
        g.Close("qformer_pooler_output", o.QFormer.PoolerOutput);
        g.Close("language_projection", o.LanguageProjection);
        g.Close("logits", o.Logits);
        g.Close("loss", o.Loss!);
        for (int i = 0; i < 3; i++)
        {
            g.Close($"vision_hidden_states.{i}", o.Vision.HiddenStates![i]);
            g.Close($"qformer_hidden_states.{i}", o.QFormer.HiddenStates![i]);
            if (fixture == "tiny-opt") g.Close($"lm_hidden_states.{i}", o.LmHiddenStates![i]);
            else
            {
                g.Close($"lm_encoder_hidden_states.{i}", o.LmEncoderHiddenStates![i]);
                g.Close($"lm_decoder_hidden_states.{i}", o.LmHiddenStates![i]);
            }
        }
    }

    [Theory]
    [InlineData("tiny-opt", "labels_legacy")]
    [InlineData("tiny-t5", "labels")]
    public void LegacyPathMatches(string fixture, string labels)
    {
        var g = new GoldenAssert(fixture);
        var x = g.Goldens;
        using var model = Blip2ForConditionalGeneration.FromPretrained(Fixtures.Dir(fixture));
        using var noGrad = no_grad();
        using var o = model.Forward(x["pixel_values"], x["input_ids_legacy"], x["attention_mask_legacy"], x[labels], useImageTokens: false);
        g.Close("logits_legacy", o.Logits);
        g.Close("loss_legacy", o.Loss!);
    }

    [Theory]
    [InlineData("tiny-opt")]
    [InlineData("tiny-t5")]
    public void Blip2ModelFeaturesMatch(string fixture)
    {
        var g = new GoldenAssert(fixture);
        var x = g.Goldens;
        using var model = Blip2ForConditionalGeneration.FromPretrained(Fixtures.Dir(fixture));
        using var noGrad = no_grad();
        using var image = model.GetImageFeatures(x["pixel_values"]);
        g.Close("blip2model_image_features.last_hidden_state", image.LastHiddenState);
        g.Close("blip2model_image_features.pooler_output", image.PoolerOutput);
        using var q = model.GetQFormerFeatures(x["pixel_values"]);
        g.Close("blip2model_qformer_features.last_hidden_state", q.LastHiddenState);
        using var text = model.GetTextFeatures(x["input_ids_legacy"], x["attention_mask_legacy"], fixture == "tiny-t5" ? x["decoder_input_ids"] : null);
        g.Close("blip2model_text_features.logits", text);
    }
}
