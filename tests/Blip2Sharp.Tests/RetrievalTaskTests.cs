using System.Text.Json.Nodes;
using Blip2Sharp.Loading;
using Blip2Sharp.Tasks;
using Xunit;

namespace Blip2Sharp.Tests;

public class RetrievalTaskTests
{
    private static readonly string[] Texts = ["a photo of a cat sitting on a red couch", "two dogs"];

    private static string[] Images() =>
        [.. Fixtures.Manifest("tiny-itm")["images"]!.AsArray().Select(p => Path.Combine(Fixtures.Dir("tiny-itm"), (string)p!))];

    [Fact]
    public void TokenizationAndPreprocessingReproduceTheGoldenInputs()
    {
        using var r = Blip2Retriever.FromPretrained(Fixtures.Dir("tiny-itm"));
        var g = Fixtures.Goldens("tiny-itm");
        var (ids, mask) = r.Tokenize(Texts);
        Assert.True(Fixtures.SameBits(g["input_ids"], ids));
        Assert.True(Fixtures.SameBits(g["attention_mask"], mask));
        using var pixels = r.ImageProcessor.PreprocessFiles(Images());
        Assert.Equal(0f, (pixels - g["pixel_values"]).abs().max().item<float>());
    }

    [Fact]
    public void MatchMatchesTheGoldensForEveryPair()
    {
        var g = new GoldenAssert("tiny-itm");
        using var r = Blip2Retriever.FromPretrained(Fixtures.Dir("tiny-itm"));
        using var images = r.EncodeImages(Images());
        using var texts = r.EncodeTexts(Texts);
        g.Close("itc_image_embeds", images.Embeds);
        g.Close("itc_text_embeds", texts.Embeds);
        g.Close("itc_logits_per_image", Blip2Retriever.ItcMatrix(images.Embeds, texts.Embeds));
        using var logits = r.ItmLogits(images, texts);       // [I, T, 2]
        // The golden ITM pairs image i with text i: the diagonal of the all-pairs matrix.
        g.Close("itm_logits_per_image", TorchSharp.torch.stack([logits[0, 0], logits[1, 1]]));
        g.Close("itm_probs", TorchSharp.torch.stack([logits[0, 0].softmax(-1), logits[1, 1].softmax(-1)]));
        var multimodal = r.MultimodalEmbeds(images, texts);
        // The multimodal embeddings are the ITM pass's query outputs: the golden's first Q = 8 positions.
        g.Close("itm_text_embeds", multimodal, g.Goldens["itm_text_embeds"][.., ..8, ..]);
    }

    [Fact]
    public void MatchJsonGivesTheGoldens()
    {
        var imgs = Images();
        var res = CliRunner.Run("match", "--model", Fixtures.Dir("tiny-itm"), "--image", imgs[0], "--image", imgs[1], "--text", Texts[0], "--text", Texts[1], "--json");
        Assert.True(res.ExitCode == 0, res.Stderr);
        var j = JsonNode.Parse(res.Stdout)!;
        var g = new GoldenAssert("tiny-itm");
        var itm = TorchSharp.torch.tensor(j["itm"]!.AsArray().SelectMany(r => r!.AsArray().Select(x => (float)x!)).ToArray()).reshape(2, 2);
        var itc = TorchSharp.torch.tensor(j["itc"]!.AsArray().SelectMany(r => r!.AsArray().Select(x => (float)x!)).ToArray()).reshape(2, 2);
        g.Close("itc_logits_per_image", itc);
        // itm_probs[i] = softmax over the two classes for pair (i, i); the match probability is column 1.
        g.Close("itm_probs", TorchSharp.torch.stack([TorchSharp.torch.stack([1 - itm[0, 0], itm[0, 0]]), TorchSharp.torch.stack([1 - itm[1, 1], itm[1, 1]])]));
    }

    [Fact]
    public void EmbedWritesSafetensors()
    {
        string outFile = Path.Combine(Fixtures.TempDir(), "e.safetensors");
        var imgs = Images();
        var res = CliRunner.Run("embed", "--model", Fixtures.Dir("tiny-itm"), "--image", imgs[0], "--image", imgs[1], "--text", Texts[0], "--text", Texts[1], "--multimodal", "--out", outFile);
        Assert.True(res.ExitCode == 0, res.Stderr);
        var g = new GoldenAssert("tiny-itm");
        using var f = SafetensorsFile.Open(outFile);
        g.Close("vision_with_projection.image_embeds", f.ReadTensor("image_embeds"));
        g.Close("itc_text_embeds", f.ReadTensor("text_embeds"));
        Assert.Equal(new long[] { 2, 8, 32 }, f.ReadTensor("multimodal_embeds").shape);
    }

    [Fact]
    public void EmbedTakesAFolderAndListsTheImagesInRowOrder()
    {
        string dir = Fixtures.TempDir();
        var imgs = Images();
        File.Copy(imgs[0], Path.Combine(dir, "a" + Path.GetExtension(imgs[0])));
        File.Copy(imgs[1], Path.Combine(dir, "b" + Path.GetExtension(imgs[1])));
        File.WriteAllText(Path.Combine(dir, "notes.txt"), "not an image");
        var res = CliRunner.Run("embed", "--model", Fixtures.Dir("tiny-itm"), "--image", dir);
        Assert.True(res.ExitCode == 0, res.Stderr);
        var j = JsonNode.Parse(res.Stdout)!;
        var listed = j["images"]!.AsArray().Select(x => Path.GetFileNameWithoutExtension((string)x!)).ToArray();
        Assert.Equal(["a", "b"], listed);
        // Rows follow the listed order: a, b are copies of the fixture's images 0, 1, so the rows are their golden embeddings.
        var rows = j["image_embeds"]!.AsArray();
        var values = rows.SelectMany(r => r!.AsArray().SelectMany(q => q!.AsArray().Select(v => (float)v!))).ToArray();
        new GoldenAssert("tiny-itm").Close("vision_with_projection.image_embeds", TorchSharp.torch.tensor(values).reshape(rows.Count, rows[0]!.AsArray().Count, -1));

        // --multimodal counts the folder's images, not the --image arguments.
        var paired = CliRunner.Run("embed", "--model", Fixtures.Dir("tiny-itm"), "--image", dir, "--text", Texts[0], "--text", Texts[1], "--multimodal");
        Assert.True(paired.ExitCode == 0, paired.Stderr);
        Assert.Equal(2, JsonNode.Parse(paired.Stdout)!["multimodal_embeds"]!.AsArray().Count);
        var unpaired = CliRunner.Run("embed", "--model", Fixtures.Dir("tiny-itm"), "--image", dir, "--text", Texts[0], "--multimodal");
        Assert.Equal(1, unpaired.ExitCode);
        Assert.Contains("give as many texts as images (2 images, 1 texts)", unpaired.Stderr);
    }

    [Fact]
    public void EmbedReadsImageFeaturesFromAGenerationCheckpointWithoutItsLanguageModel()
    {
        var manifest = Fixtures.Manifest("tiny-opt");
        var imgs = manifest["images"]!.AsArray().Select(p => Path.Combine(Fixtures.Dir("tiny-opt"), (string)p!)).ToList();
        string outFile = Path.Combine(Fixtures.TempDir(), "q.safetensors");
        var res = CliRunner.Run("embed", "--model", Fixtures.Dir("tiny-opt"), "--image", imgs[0], "--image", imgs[1], "--out", outFile);
        Assert.True(res.ExitCode == 0, res.Stderr);
        using var f = SafetensorsFile.Open(outFile);
        new GoldenAssert("tiny-opt").Close("blip2model_qformer_features.last_hidden_state", f.ReadTensor("query_outputs"));
        using var model = Modeling.Blip2ImageFeatureModel.FromPretrained(Fixtures.Dir("tiny-opt"));
        Assert.DoesNotContain(model.named_parameters(), p => p.name.StartsWith("language"));
        var withText = CliRunner.Run("embed", "--model", Fixtures.Dir("tiny-opt"), "--image", imgs[0], "--text", "a cat");
        Assert.Equal(1, withText.ExitCode);
        Assert.Contains("image features only", withText.Stderr);
    }

    [Fact]
    public void AGenerationCheckpointIsRefusedWithAClearMessage()
    {
        var res = CliRunner.Run("match", "--model", Fixtures.Dir("tiny-opt"), "--image", Images()[0], "--text", "a cat");
        Assert.Equal(1, res.ExitCode);
        Assert.Contains("no retrieval heads", res.Stderr);
    }
}
