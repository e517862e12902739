using System.Text.Json.Serialization;

namespace Blip2Sharp.Configuration;

/// <summary>The language model's config: <see cref="OptConfig"/> or <see cref="T5Config"/>.</summary>
public abstract record TextConfig
{
    [JsonPropertyName("model_type")] public string ModelType { get; init; } = "";
    [JsonPropertyName("vocab_size")] public int VocabSize { get; init; }
    [JsonPropertyName("bos_token_id")] public int? BosTokenId { get; init; }
    [JsonPropertyName("pad_token_id")] public int? PadTokenId { get; init; }
    [JsonPropertyName("eos_token_id"), JsonConverter(typeof(IdListConverter))] public int[]? EosTokenId { get; init; }
    [JsonPropertyName("decoder_start_token_id")] public int? DecoderStartTokenId { get; init; }
    [JsonPropertyName("tie_word_embeddings")] public bool TieWordEmbeddings { get; init; } = true;
    [JsonPropertyName("is_encoder_decoder")] public bool IsEncoderDecoder { get; init; }
    [JsonPropertyName("torch_dtype")] public string? TorchDtype { get; init; }

    /// <summary>Width of the embeddings the projected queries are merged into.</summary>
    [JsonIgnore] public abstract int EmbeddingWidth { get; }
}
