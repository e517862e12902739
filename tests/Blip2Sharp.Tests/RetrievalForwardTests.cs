using Blip2Sharp.Modeling;
using Xunit;
using static TorchSharp.torch;

namespace Blip2Sharp.Tests;

public class RetrievalForwardTests
{
    [Fact]
    public void ItmItcAndProjectionModelsMatchTheReference()
    {
        var g = new GoldenAssert("tiny-itm");
        var x = g.Goldens;
        using var model = Blip2ForImageTextRetrieval.FromPretrained(Fixtures.Dir("tiny-itm"));
        using var noGrad = no_grad();

        using var itm = model.ForwardItm(x["pixel_values"], x["input_ids"], x["attention_mask"]);
        g.Close("itm_logits_per_image", itm.LogitsPerImage);
        g.Close("itm_logits_per_text", itm.LogitsPerText);
        g.Close("itm_text_embeds", itm.TextEmbeds);
        g.Close("itm_probs", itm.Probabilities);

        using var itc = model.ForwardItc(x["pixel_values"], x["input_ids"], x["attention_mask"]);
        g.Close("itc_logits_per_image", itc.LogitsPerImage);
        g.Close("itc_logits_per_text", itc.LogitsPerText);
        g.Close("itc_image_embeds", itc.ImageEmbeds);
        g.Close("itc_text_embeds", itc.TextEmbeds);
        g.Close("itc_text_last_hidden_state", itc.TextLastHiddenState);
        g.Close("vision_last_hidden_state", itc.Vision.LastHiddenState);
        g.Close("vision_pooler_output", itc.Vision.PoolerOutput);

        // Blip2VisionModelWithProjection and Blip2TextModelWithProjection from the same checkpoint.
        using var vision = model.EncodeImage(x["pixel_values"]);
        g.Close("vision_with_projection.last_hidden_state", vision.LastHiddenState);
        g.Close("vision_with_projection.image_embeds", model.ImageEmbeds(vision.LastHiddenState));
        var textHidden = model.TextHidden(x["input_ids"], x["attention_mask"]);
        g.Close("text_with_projection.last_hidden_state", textHidden);
        g.Close("text_with_projection.text_embeds", model.TextEmbedsAllPositions(textHidden));
    }

    [Fact]
    public void ItcTakesTheMaximumOverQueriesNotTheMean()
    {
        // Hand-made: image 0 has queries e1 and e2, image 1 has e2 twice; texts e1 and e2.
        var img = tensor(new float[] { 1, 0, 0, 1, 0, 1, 0, 1 }).reshape(2, 2, 2);
        var txt = tensor(new float[] { 1, 0, 0, 1 }).reshape(2, 2);
        var sim = Blip2ForImageTextRetrieval.ItcSimilarity(img, txt);
        Assert.Equal(new float[] { 1, 1, 0, 1 }, sim.data<float>().ToArray());
    }
}
