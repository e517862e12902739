using System.Text.Json;
using System.Text.Json.Serialization;

namespace Blip2Sharp.Configuration;

/// <summary>generation_config.json: the checkpoint's decoding defaults (transformers GenerationConfig names).</summary>
public sealed record GenerationConfig
{
    [JsonPropertyName("bos_token_id")] public int? BosTokenId { get; init; }
    [JsonPropertyName("eos_token_id"), JsonConverter(typeof(IdListConverter))] public int[]? EosTokenId { get; init; }
    [JsonPropertyName("pad_token_id")] public int? PadTokenId { get; init; }
    [JsonPropertyName("decoder_start_token_id")] public int? DecoderStartTokenId { get; init; }
    [JsonPropertyName("max_length")] public int? MaxLength { get; init; }
    [JsonPropertyName("max_new_tokens")] public int? MaxNewTokens { get; init; }
    [JsonPropertyName("min_length")] public int? MinLength { get; init; }
    [JsonPropertyName("min_new_tokens")] public int? MinNewTokens { get; init; }
    [JsonPropertyName("num_beams")] public int? NumBeams { get; init; }
    [JsonPropertyName("do_sample")] public bool? DoSample { get; init; }
    [JsonPropertyName("temperature")] public double? Temperature { get; init; }
    [JsonPropertyName("top_k")] public int? TopK { get; init; }
    [JsonPropertyName("top_p")] public double? TopP { get; init; }
    [JsonPropertyName("repetition_penalty")] public double? RepetitionPenalty { get; init; }
    [JsonPropertyName("length_penalty")] public double? LengthPenalty { get; init; }
    [JsonPropertyName("no_repeat_ngram_size")] public int? NoRepeatNgramSize { get; init; }
    [JsonPropertyName("early_stopping"), JsonConverter(typeof(EarlyStoppingConverter))]
    public Generation.EarlyStopping? EarlyStopping { get; init; }
    [JsonPropertyName("num_return_sequences")] public int? NumReturnSequences { get; init; }
    [JsonPropertyName("use_cache")] public bool? UseCache { get; init; }
    [JsonPropertyName("_from_model_config")] public bool? FromModelConfig { get; init; }
    [JsonPropertyName("transformers_version")] public string? TransformersVersion { get; init; }

    public static GenerationConfig Load(string file, ConfigWarnings warnings) =>
        ConfigJson.Bind<GenerationConfig>(ConfigJson.ReadObject(file), file, warnings);
}

/// <summary>early_stopping as transformers writes it: true, false or "never".</summary>
public sealed class EarlyStoppingConverter : JsonConverter<Generation.EarlyStopping?>
{
    public override Generation.EarlyStopping? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        reader.TokenType switch
        {
            JsonTokenType.Null => null,
            JsonTokenType.True => Generation.EarlyStopping.WhenFull,
            JsonTokenType.False => Generation.EarlyStopping.Heuristic,
            JsonTokenType.String when reader.GetString() == "never" => Generation.EarlyStopping.Never,
            _ => throw new JsonException("expected true, false or \"never\""),
        };

    public override void Write(Utf8JsonWriter writer, Generation.EarlyStopping? value, JsonSerializerOptions options)
    {
        switch (value)
        {
            case null: writer.WriteNullValue(); break;
            case Generation.EarlyStopping.Never: writer.WriteStringValue("never"); break;
            default: writer.WriteBooleanValue(value == Generation.EarlyStopping.WhenFull); break;
        }
    }
}
