using System.Text.Json.Serialization;

namespace Blip2Sharp.Configuration;

/// <summary>configuration_blip_2.Blip2QFormerConfig (transformers 4.45.1): BERT-base shaped by default.</summary>
public sealed record Blip2QFormerConfig
{
    [JsonPropertyName("vocab_size")] public int VocabSize { get; init; } = 30522;
    [JsonPropertyName("hidden_size")] public int HiddenSize { get; init; } = 768;
    [JsonPropertyName("num_hidden_layers")] public int NumHiddenLayers { get; init; } = 12;
    [JsonPropertyName("num_attention_heads")] public int NumAttentionHeads { get; init; } = 12;
    [JsonPropertyName("intermediate_size")] public int IntermediateSize { get; init; } = 3072;
    [JsonPropertyName("hidden_act")] public string HiddenAct { get; init; } = "gelu";
    [JsonPropertyName("hidden_dropout_prob")] public double HiddenDropoutProb { get; init; } = 0.1;
    [JsonPropertyName("attention_probs_dropout_prob")] public double AttentionProbsDropoutProb { get; init; } = 0.1;
    [JsonPropertyName("max_position_embeddings")] public int MaxPositionEmbeddings { get; init; } = 512;
    [JsonPropertyName("initializer_range")] public double InitializerRange { get; init; } = 0.02;
    [JsonPropertyName("layer_norm_eps")] public double LayerNormEps { get; init; } = 1e-12;
    [JsonPropertyName("pad_token_id")] public int PadTokenId { get; init; }
    [JsonPropertyName("position_embedding_type")] public string PositionEmbeddingType { get; init; } = "absolute";
    [JsonPropertyName("cross_attention_frequency")] public int CrossAttentionFrequency { get; init; } = 2;
    /// <summary>Overwritten by Blip2Config with the vision tower's hidden size, as the reference does.</summary>
    [JsonPropertyName("encoder_hidden_size")] public int EncoderHiddenSize { get; init; } = 1408;
    /// <summary>True for retrieval checkpoints: adds the text path (word/position embeddings, text FFN).</summary>
    [JsonPropertyName("use_qformer_text_input")] public bool UseQFormerTextInput { get; init; }
    /// <summary>Stored by the official hub configs (null); the Q-Former has no classifier, so it is unused.</summary>
    [JsonPropertyName("classifier_dropout")] public double? ClassifierDropout { get; init; }
    [JsonPropertyName("model_type")] public string ModelType { get; init; } = "blip_2_qformer";

    public int HeadDim => HiddenSize / NumAttentionHeads;

    /// <summary>The reference puts cross-attention on layers where layer_idx % cross_attention_frequency == 0.</summary>
    public bool HasCrossAttention(int layerIdx) => layerIdx % CrossAttentionFrequency == 0;
}
