using System.Text.Json.Serialization;

namespace Blip2Sharp.Configuration;

/// <summary>configuration_t5.T5Config (transformers 4.45.1) with its defaults (t5-small shaped).</summary>
public sealed record T5Config : TextConfig
{
    public T5Config()
    {
        ModelType = "t5";
        VocabSize = 32128;
        PadTokenId = 0;
        EosTokenId = [1];
        IsEncoderDecoder = true;
    }

    [JsonPropertyName("d_model")] public int DModel { get; init; } = 512;
    [JsonPropertyName("d_kv")] public int DKv { get; init; } = 64;
    [JsonPropertyName("d_ff")] public int DFf { get; init; } = 2048;
    [JsonPropertyName("num_layers")] public int NumLayers { get; init; } = 6;
    /// <summary>Null means num_layers (symmetric), as the reference resolves it.</summary>
    [JsonPropertyName("num_decoder_layers")] public int? NumDecoderLayersRaw { get; init; }
    [JsonPropertyName("num_heads")] public int NumHeads { get; init; } = 8;
    [JsonPropertyName("relative_attention_num_buckets")] public int RelativeAttentionNumBuckets { get; init; } = 32;
    [JsonPropertyName("relative_attention_max_distance")] public int RelativeAttentionMaxDistance { get; init; } = 128;
    [JsonPropertyName("dropout_rate")] public double DropoutRate { get; init; } = 0.1;
    [JsonPropertyName("classifier_dropout")] public double ClassifierDropout { get; init; }
    [JsonPropertyName("layer_norm_epsilon")] public double LayerNormEpsilon { get; init; } = 1e-6;
    [JsonPropertyName("initializer_factor")] public double InitializerFactor { get; init; } = 1.0;
    [JsonPropertyName("feed_forward_proj")] public string FeedForwardProj { get; init; } = "relu";
    /// <summary>Written by some configs; when present it wins over what feed_forward_proj implies.</summary>
    [JsonPropertyName("dense_act_fn")] public string? DenseActFnRaw { get; init; }
    [JsonPropertyName("is_gated_act")] public bool? IsGatedActRaw { get; init; }
    /// <summary>Legacy keys of the original T5 configs; the model does not use them.</summary>
    [JsonPropertyName("n_positions")] public int? NPositions { get; init; }
    [JsonPropertyName("output_past")] public bool? OutputPast { get; init; }

    [JsonIgnore] public int NumDecoderLayers => NumDecoderLayersRaw ?? NumLayers;
    [JsonIgnore] public int InnerDim => NumHeads * DKv;
    [JsonIgnore] public override int EmbeddingWidth => DModel;

    /// <summary>
    /// The activation of the feed-forward, as T5Config.__init__ derives it: the last part of feed_forward_proj,
    /// except that "gated-gelu" alone means gelu_new (tanh approximation). A dense_act_fn stored in config.json is
    /// applied afterwards by PretrainedConfig and so wins: that is how BLIP-2 Flan-T5 gets exact GELU.
    /// </summary>
    [JsonIgnore]
    public string DenseActFn => DenseActFnRaw ?? (FeedForwardProj == "gated-gelu" ? "gelu_new" : FeedForwardProj.Split('-')[^1]);

    [JsonIgnore] public bool IsGatedAct => IsGatedActRaw ?? FeedForwardProj.Split('-')[0] == "gated";

    internal void Validate(string where)
    {
        var parts = FeedForwardProj.Split('-');
        if ((parts.Length > 1 && parts[0] != "gated") || parts.Length > 2)
            throw new InvalidConfigException($"{where}: feed_forward_proj '{FeedForwardProj}' is not a valid activation; use 'gated-{{ACT_FN}}' or '{{ACT_FN}}', e.g. 'gated-gelu' or 'relu'.");
    }
}
