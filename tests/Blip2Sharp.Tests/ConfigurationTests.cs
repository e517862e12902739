using System.Text.Json.Nodes;
using Blip2Sharp.Configuration;
using Xunit;

namespace Blip2Sharp.Tests;

public class ConfigurationTests
{
    private static Blip2Config Load(string dir, out ConfigWarnings warnings)
    {
        warnings = new ConfigWarnings();
        return Blip2Config.Load(dir, warnings);
    }

    private static string WriteConfig(JsonNode json)
    {
        string dir = Fixtures.TempDir();
        File.WriteAllText(Path.Combine(dir, "config.json"), json.ToJsonString());
        return dir;
    }

    private static JsonObject TinyOptJson() =>
        (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(Fixtures.Dir("tiny-opt"), "config.json")))!;

    [Fact]
    public void TinyOptBindsEveryValueWithoutWarnings()
    {
        var c = Load(Fixtures.Dir("tiny-opt"), out var w);
        Assert.Empty(w.Items);
        Assert.Equal(8, c.NumQueryTokens);
        Assert.Equal(480, c.ImageTokenIndex);
        Assert.True(c.UseDecoderOnlyLanguageModel);
        Assert.Equal((40, 2, 4, 30, 6, 37), (c.VisionConfig.HiddenSize, c.VisionConfig.NumHiddenLayers, c.VisionConfig.NumAttentionHeads, c.VisionConfig.ImageSize, c.VisionConfig.PatchSize, c.VisionConfig.IntermediateSize));
        Assert.Equal(1e-6, c.VisionConfig.LayerNormEps); // default
        Assert.Equal((32, 2, 4, 1, 64), (c.QFormerConfig.HiddenSize, c.QFormerConfig.NumHiddenLayers, c.QFormerConfig.NumAttentionHeads, c.QFormerConfig.CrossAttentionFrequency, c.QFormerConfig.MaxPositionEmbeddings));
        Assert.Equal(1e-12, c.QFormerConfig.LayerNormEps); // default
        var opt = Assert.IsType<OptConfig>(c.TextConfig);
        Assert.Equal((48, 2, 37, 4, 484, 48), (opt.HiddenSize, opt.NumHiddenLayers, opt.FfnDim, opt.NumAttentionHeads, opt.VocabSize, opt.WordEmbedProjDim));
        Assert.True(opt.DoLayerNormBefore); // default
        Assert.Equal([14], opt.EosTokenId!);
        Assert.Equal(2, opt.BosTokenId); // OPT default
        Assert.Equal(1, opt.PadTokenId);
    }

    [Fact]
    public void OfficialOptConfigFillsTheReferenceDefaults()
    {
        var c = Load(Fixtures.Dir("manifests/blip2-opt-2.7b"), out var w);
        Assert.Empty(w.Items);
        Assert.Equal((1408, 39, 16, 6144, 224, 14), (c.VisionConfig.HiddenSize, c.VisionConfig.NumHiddenLayers, c.VisionConfig.NumAttentionHeads, c.VisionConfig.IntermediateSize, c.VisionConfig.ImageSize, c.VisionConfig.PatchSize));
        Assert.Equal((768, 12, 12, 3072, 2, 1408, 30522), (c.QFormerConfig.HiddenSize, c.QFormerConfig.NumHiddenLayers, c.QFormerConfig.NumAttentionHeads, c.QFormerConfig.IntermediateSize, c.QFormerConfig.CrossAttentionFrequency, c.QFormerConfig.EncoderHiddenSize, c.QFormerConfig.VocabSize));
        var opt = Assert.IsType<OptConfig>(c.TextConfig);
        Assert.Equal((2560, 32, 10240, 32, 50304, 2048), (opt.HiddenSize, opt.NumHiddenLayers, opt.FfnDim, opt.NumAttentionHeads, opt.VocabSize, opt.MaxPositionEmbeddings));
        Assert.Equal([50118], opt.EosTokenId!);
        Assert.Equal(50265, c.ImageTokenIndex);
        Assert.Equal(32, c.NumQueryTokens);
    }

    [Fact]
    public void FlanT5DenseActFnWrittenInConfigWinsOverFeedForwardProj()
    {
        var c = Load(Fixtures.Dir("manifests/blip2-flan-t5-xl"), out _);
        var t5 = Assert.IsType<T5Config>(c.TextConfig);
        Assert.Equal("gated-gelu", t5.FeedForwardProj);
        Assert.Equal("gelu", t5.DenseActFn); // exact GELU, as the BLIP-2 conversion wrote it
        Assert.True(t5.IsGatedAct);
        Assert.Equal((2048, 64, 5120, 24, 24, 32, 32, 128), (t5.DModel, t5.DKv, t5.DFf, t5.NumLayers, t5.NumDecoderLayers, t5.NumHeads, t5.RelativeAttentionNumBuckets, t5.RelativeAttentionMaxDistance));
        Assert.False(t5.TieWordEmbeddings);
        Assert.False(c.UseDecoderOnlyLanguageModel);
        Assert.True(c.IsEncoderDecoder);
    }

    [Theory]
    [InlineData("gated-gelu", "gelu_new", true)]
    [InlineData("relu", "relu", false)]
    [InlineData("gated-silu", "silu", true)]
    [InlineData("gelu", "gelu", false)]
    public void T5ActivationDerivedFromFeedForwardProjAlone(string ffp, string act, bool gated)
    {
        var json = TinyOptJson();
        json["text_config"] = new JsonObject { ["model_type"] = "t5", ["feed_forward_proj"] = ffp, ["num_layers"] = 3 };
        json.Remove("use_decoder_only_language_model");
        var c = Load(WriteConfig(json), out _);
        var t5 = Assert.IsType<T5Config>(c.TextConfig);
        Assert.Equal(act, t5.DenseActFn);
        Assert.Equal(gated, t5.IsGatedAct);
        Assert.Equal(3, t5.NumDecoderLayers); // num_decoder_layers defaults to num_layers
        Assert.False(c.UseDecoderOnlyLanguageModel); // derived from the text model type
    }

    [Fact]
    public void InvalidFeedForwardProjIsRejected()
    {
        var json = TinyOptJson();
        json["text_config"] = new JsonObject { ["model_type"] = "t5", ["feed_forward_proj"] = "double-gated-gelu" };
        var e = Assert.Throws<InvalidConfigException>(() => Load(WriteConfig(json), out _));
        Assert.Contains("feed_forward_proj", e.Message);
    }

    [Fact]
    public void QFormerEncoderHiddenSizeFollowsTheVisionTower()
    {
        var json = TinyOptJson();
        json["qformer_config"]!["encoder_hidden_size"] = 999;
        var c = Load(WriteConfig(json), out _);
        Assert.Equal(40, c.QFormerConfig.EncoderHiddenSize);
    }

    [Fact]
    public void RetrievalConfigHasTheTextPath()
    {
        var c = Load(Fixtures.Dir("manifests/blip2-itm-vit-g"), out var w);
        Assert.Empty(w.Items);
        Assert.True(c.QFormerConfig.UseQFormerTextInput);
        Assert.Equal(30523, c.QFormerConfig.VocabSize);
        Assert.Null(c.ImageTokenIndex);
        Assert.Equal(256, c.ImageTextHiddenSize);
    }

    [Fact]
    public void UnknownKeysAreReportedOnceEach()
    {
        var json = TinyOptJson();
        json["mystery"] = 1;
        json["vision_config"]!["mystery_vision"] = true;
        string dir = WriteConfig(json);
        var warnings = new ConfigWarnings();
        Blip2Config.Load(dir, warnings);
        Blip2Config.Load(dir, warnings);
        Assert.Equal(2, warnings.Items.Count);
        Assert.Contains(warnings.Items, x => x.Contains("'mystery'"));
        Assert.Contains(warnings.Items, x => x.Contains("vision_config") && x.Contains("'mystery_vision'"));
    }

    [Fact]
    public void OtherCheckpointJsonFilesBind()
    {
        var w = new ConfigWarnings();
        var gen = GenerationConfig.Load(Path.Combine(Fixtures.Dir("tiny-opt"), "generation_config.json"), w);
        Assert.Equal((2, 1), (gen.BosTokenId, gen.PadTokenId));
        Assert.Equal([14], gen.EosTokenId!);
        var pre = ImageProcessorConfig.Load(Path.Combine(Fixtures.Dir("tiny-opt"), "preprocessor_config.json"), w);
        Assert.Equal((30, 30), (pre.Size.Height, pre.Size.Width));
        Assert.Equal(ImageProcessorConfig.ClipMean, pre.ImageMean);
        Assert.Equal(8, ProcessorConfig.Load(Path.Combine(Fixtures.Dir("tiny-opt"), "processor_config.json"), w).NumQueryTokens);
        var tok = TokenizerConfig.Load(Path.Combine(Fixtures.Dir("tiny-opt"), "tokenizer_config.json"), w);
        Assert.Equal("GPT2Tokenizer", tok.TokenizerClass);
        Assert.Equal("<image>", tok.AddedTokensDecoder!["480"].Content);
        Assert.False(tok.AddedTokensDecoder["480"].Normalized);
        Assert.Equal("</s>", tok.BosToken!.Content);
        var t5tok = TokenizerConfig.Load(Path.Combine(Fixtures.Dir("tiny-t5"), "tokenizer_config.json"), w);
        Assert.Equal(100, t5tok.ExtraIds);
        var map = SpecialTokensMap.Load(Path.Combine(Fixtures.Dir("tiny-itm"), "special_tokens_map.json"), w);
        Assert.Equal("[DEC]", map.BosToken!.Content);
        Assert.Empty(w.Items);
    }

    [Fact]
    public void ConfigThatIsNotJson()
    {
        string dir = Fixtures.TempDir();
        File.WriteAllText(Path.Combine(dir, "config.json"), "{ \"model_type\": \"blip-2\", ");
        var e = Assert.Throws<InvalidConfigException>(() => Load(dir, out _));
        Assert.Contains("not valid JSON", e.Message);
    }

    [Fact]
    public void ConfigWithoutModelType()
    {
        var json = TinyOptJson();
        json.Remove("model_type");
        var e = Assert.Throws<InvalidConfigException>(() => Load(WriteConfig(json), out _));
        Assert.Contains("lacks 'model_type'", e.Message);
    }

    [Fact]
    public void ConfigWithAValueOfTheWrongType()
    {
        var json = TinyOptJson();
        json["vision_config"]!["hidden_size"] = "wide";
        var e = Assert.Throws<InvalidConfigException>(() => Load(WriteConfig(json), out _));
        Assert.Contains("hidden_size", e.Message);
    }

    [Fact]
    public void ConfigWithASectionThatIsNotAnObject()
    {
        var json = TinyOptJson();
        json["vision_config"] = 5;
        var e = Assert.Throws<InvalidConfigException>(() => Load(WriteConfig(json), out _));
        Assert.Contains("'vision_config' must be a JSON object", e.Message);
    }

    [Theory]
    [InlineData(null, "bert")]
    [InlineData("text_config", "llama")]
    public void UnknownModelType(string? section, string type)
    {
        var json = TinyOptJson();
        if (section is null) json["model_type"] = type;
        else json[section]!["model_type"] = type;
        var e = Assert.Throws<UnknownModelTypeException>(() => Load(WriteConfig(json), out _));
        Assert.Contains($"'{type}'", e.Message);
    }

    [Fact]
    public void MissingConfigFile()
    {
        string dir = Fixtures.TempDir();
        var e = Assert.Throws<FileNotFoundException>(() => Load(dir, out _));
        Assert.Contains($"{dir} has no config.json", e.Message);
        string missing = Path.Combine(dir, "blip2-opt-2.7b");
        var e2 = Assert.Throws<DirectoryNotFoundException>(() => Load(missing, out _));
        Assert.StartsWith($"{missing}: no such model folder", e2.Message);
        Assert.Contains("config.json", e2.Message);
    }

    [Fact]
    public void AMissingModelFolderIsNamedByTheCli()
    {
        string missing = Path.Combine(Fixtures.TempDir(), "blip2-opt-2.7b");
        var r = CliRunner.Run("caption", Path.Combine(Fixtures.Dir("preprocess-224"), "images", "gray_33x17.png"), "--model", missing);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains($"blip2: error: {missing}: no such model folder", r.Stderr);
    }
}
