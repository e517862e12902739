using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Blip2Sharp.Configuration;

/// <summary>configuration_blip_2.Blip2Config (transformers 4.45.1): the checkpoint's config.json.</summary>
public sealed record Blip2Config
{
    [JsonPropertyName("model_type")] public string ModelType { get; init; } = "blip-2";
    [JsonPropertyName("architectures")] public string[]? Architectures { get; init; }
    [JsonPropertyName("num_query_tokens")] public int NumQueryTokens { get; init; } = 32;
    [JsonPropertyName("image_text_hidden_size")] public int ImageTextHiddenSize { get; init; } = 256;
    /// <summary>Id of the &lt;image&gt; token; null selects the legacy path (queries concatenated in front).</summary>
    [JsonPropertyName("image_token_index")] public int? ImageTokenIndex { get; init; }
    [JsonPropertyName("initializer_factor")] public double InitializerFactor { get; init; } = 1.0;
    [JsonPropertyName("initializer_range")] public double InitializerRange { get; init; } = 0.02;
    [JsonPropertyName("use_decoder_only_language_model")] public bool? UseDecoderOnlyLanguageModelRaw { get; init; }
    [JsonPropertyName("torch_dtype")] public string? TorchDtype { get; init; }

    [JsonIgnore] public Blip2VisionConfig VisionConfig { get; init; } = new();
    [JsonIgnore] public Blip2QFormerConfig QFormerConfig { get; init; } = new();
    [JsonIgnore] public TextConfig TextConfig { get; init; } = new OptConfig();

    /// <summary>json value if written, else whether the text model is a causal LM (OPT) as the reference derives it.</summary>
    [JsonIgnore] public bool UseDecoderOnlyLanguageModel => UseDecoderOnlyLanguageModelRaw ?? TextConfig is OptConfig;

    [JsonIgnore] public bool IsEncoderDecoder => TextConfig.IsEncoderDecoder;

    /// <summary>Reads DIR/config.json (or a config.json path).</summary>
    public static Blip2Config Load(string path, ConfigWarnings warnings)
    {
        if (Path.GetFileName(path) != "config.json") Loading.CheckpointFolder.RequireNotFile(path);
        if (!Directory.Exists(path) && !File.Exists(path))
            throw new DirectoryNotFoundException($"{path}: no such model folder. A BLIP-2 checkpoint is a folder holding config.json, the weights (model.safetensors) and the tokenizer and preprocessor files, as downloaded from the Hugging Face hub (e.g. Salesforce/blip2-opt-2.7b).");
        string file = Directory.Exists(path) ? Path.Combine(path, "config.json") : path;
        if (!File.Exists(file))
            throw new FileNotFoundException($"{path} has no config.json, so it is not a Hugging Face checkpoint folder; a BLIP-2 checkpoint holds config.json, model.safetensors and the tokenizer and preprocessor files.", file);
        return FromJson(ConfigJson.ReadObject(file), file, warnings);
    }

    public static Blip2Config FromJson(JsonObject json, string where, ConfigWarnings warnings)
    {
        if (json["model_type"] is null)
            throw new InvalidConfigException($"{where}: lacks 'model_type'; a BLIP-2 checkpoint's config.json has \"model_type\": \"blip-2\".");
        var root = ConfigJson.Bind<Blip2Config>(json, where, warnings,
            ["vision_config", "qformer_config", "text_config", .. ConfigJson.PretrainedConfigKeys]);
        if (root.ModelType != "blip-2")
            throw new UnknownModelTypeException($"{where}: model_type '{root.ModelType}' is not supported; Blip2Sharp reads 'blip-2' checkpoints.");

        var vision = ConfigJson.Bind<Blip2VisionConfig>(Section(json, "vision_config", where), where + " vision_config", warnings, ConfigJson.PretrainedConfigKeys);
        if (vision.ModelType != "blip_2_vision_model")
            throw new UnknownModelTypeException($"{where}: vision_config.model_type '{vision.ModelType}' is not supported; expected 'blip_2_vision_model'.");
        var qformer = ConfigJson.Bind<Blip2QFormerConfig>(Section(json, "qformer_config", where), where + " qformer_config", warnings, ConfigJson.PretrainedConfigKeys);
        if (qformer.ModelType != "blip_2_qformer")
            throw new UnknownModelTypeException($"{where}: qformer_config.model_type '{qformer.ModelType}' is not supported; expected 'blip_2_qformer'.");

        var textJson = Section(json, "text_config", where);
        // The reference defaults a text_config without model_type to OPT.
        string textType = textJson["model_type"]?.GetValue<string>() ?? "opt";
        TextConfig text = textType switch
        {
            "opt" => ConfigJson.Bind<OptConfig>(textJson, where + " text_config", warnings, ConfigJson.PretrainedConfigKeys),
            "t5" => ConfigJson.Bind<T5Config>(textJson, where + " text_config", warnings, ConfigJson.PretrainedConfigKeys),
            _ => throw new UnknownModelTypeException($"{where}: text_config.model_type '{textType}' is not supported; Blip2Sharp implements 'opt' and 't5'."),
        };
        if (text is T5Config t5) t5.Validate(where + " text_config");

        foreach (var (name, value) in new (string, int)[]
        {
            ("vision_config.hidden_size", vision.HiddenSize), ("vision_config.num_attention_heads", vision.NumAttentionHeads),
            ("vision_config.patch_size", vision.PatchSize), ("vision_config.image_size", vision.ImageSize),
            ("qformer_config.hidden_size", qformer.HiddenSize), ("qformer_config.num_attention_heads", qformer.NumAttentionHeads),
            ("qformer_config.cross_attention_frequency", qformer.CrossAttentionFrequency), ("num_query_tokens", root.NumQueryTokens),
            ("text_config.vocab_size", text.VocabSize),
        })
        {
            if (value <= 0) throw new InvalidConfigException($"{where}: {name} must be a positive integer, got {value}.");
        }
        if (vision.HiddenSize % vision.NumAttentionHeads != 0)
            throw new InvalidConfigException($"{where}: vision_config.hidden_size {vision.HiddenSize} is not a multiple of num_attention_heads {vision.NumAttentionHeads}.");
        if (qformer.HiddenSize % qformer.NumAttentionHeads != 0)
            throw new InvalidConfigException($"{where}: qformer_config.hidden_size {qformer.HiddenSize} is not a multiple of num_attention_heads {qformer.NumAttentionHeads}.");

        return root with
        {
            VisionConfig = vision,
            // As Blip2Config.__init__ does: the Q-Former's cross-attention reads the vision tower's width.
            QFormerConfig = qformer with { EncoderHiddenSize = vision.HiddenSize },
            TextConfig = text,
        };
    }

    private static JsonObject Section(JsonObject json, string key, string where) => json[key] switch
    {
        null => new JsonObject(),
        JsonObject o => o,
        _ => throw new InvalidConfigException($"{where}: '{key}' must be a JSON object."),
    };
}
