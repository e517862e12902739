using System.Text.Json.Serialization;

namespace Blip2Sharp.Configuration;

/// <summary>configuration_opt.OPTConfig (transformers 4.45.1) with its defaults (OPT-125m shaped).</summary>
public sealed record OptConfig : TextConfig
{
    public OptConfig()
    {
        ModelType = "opt";
        VocabSize = 50272;
        BosTokenId = 2;
        PadTokenId = 1;
        EosTokenId = [2];
    }

    [JsonPropertyName("hidden_size")] public int HiddenSize { get; init; } = 768;
    [JsonPropertyName("num_hidden_layers")] public int NumHiddenLayers { get; init; } = 12;
    [JsonPropertyName("ffn_dim")] public int FfnDim { get; init; } = 3072;
    [JsonPropertyName("max_position_embeddings")] public int MaxPositionEmbeddings { get; init; } = 2048;
    [JsonPropertyName("do_layer_norm_before")] public bool DoLayerNormBefore { get; init; } = true;
    [JsonPropertyName("_remove_final_layer_norm")] public bool RemoveFinalLayerNorm { get; init; }
    /// <summary>Null in config.json means hidden_size, as the reference resolves it.</summary>
    [JsonPropertyName("word_embed_proj_dim")] public int? WordEmbedProjDimRaw { get; init; }
    [JsonPropertyName("dropout")] public double Dropout { get; init; } = 0.1;
    [JsonPropertyName("attention_dropout")] public double AttentionDropout { get; init; }
    [JsonPropertyName("activation_dropout")] public double ActivationDropout { get; init; }
    [JsonPropertyName("num_attention_heads")] public int NumAttentionHeads { get; init; } = 12;
    [JsonPropertyName("activation_function")] public string ActivationFunction { get; init; } = "relu";
    [JsonPropertyName("layerdrop")] public double LayerDrop { get; init; }
    [JsonPropertyName("init_std")] public double InitStd { get; init; } = 0.02;
    [JsonPropertyName("enable_bias")] public bool EnableBias { get; init; } = true;
    [JsonPropertyName("layer_norm_elementwise_affine")] public bool LayerNormElementwiseAffine { get; init; } = true;

    [JsonIgnore] public int WordEmbedProjDim => WordEmbedProjDimRaw ?? HiddenSize;
    [JsonIgnore] public int HeadDim => HiddenSize / NumAttentionHeads;
    [JsonIgnore] public override int EmbeddingWidth => WordEmbedProjDim;
}
