using System.Text.Json.Serialization;

namespace Blip2Sharp.Configuration;

/// <summary>configuration_blip_2.Blip2VisionConfig (transformers 4.45.1); defaults are the reference's (EVA ViT-g).</summary>
public sealed record Blip2VisionConfig
{
    [JsonPropertyName("hidden_size")] public int HiddenSize { get; init; } = 1408;
    [JsonPropertyName("intermediate_size")] public int IntermediateSize { get; init; } = 6144;
    [JsonPropertyName("num_hidden_layers")] public int NumHiddenLayers { get; init; } = 39;
    [JsonPropertyName("num_attention_heads")] public int NumAttentionHeads { get; init; } = 16;
    [JsonPropertyName("num_channels")] public int NumChannels { get; init; } = 3;
    [JsonPropertyName("image_size")] public int ImageSize { get; init; } = 224;
    [JsonPropertyName("patch_size")] public int PatchSize { get; init; } = 14;
    [JsonPropertyName("hidden_act")] public string HiddenAct { get; init; } = "gelu";
    [JsonPropertyName("layer_norm_eps")] public double LayerNormEps { get; init; } = 1e-6;
    [JsonPropertyName("attention_dropout")] public double AttentionDropout { get; init; }
    [JsonPropertyName("dropout")] public double Dropout { get; init; }
    [JsonPropertyName("initializer_range")] public double InitializerRange { get; init; } = 1e-10;
    [JsonPropertyName("initializer_factor")] public double InitializerFactor { get; init; } = 1.0;
    [JsonPropertyName("qkv_bias")] public bool QkvBias { get; init; } = true;
    /// <summary>Stored by some hub configs; the BLIP-2 vision tower does not use it.</summary>
    [JsonPropertyName("projection_dim")] public int? ProjectionDim { get; init; }
    [JsonPropertyName("model_type")] public string ModelType { get; init; } = "blip_2_vision_model";

    public int NumPatches => (ImageSize / PatchSize) * (ImageSize / PatchSize);
    public int HeadDim => HiddenSize / NumAttentionHeads;
}
