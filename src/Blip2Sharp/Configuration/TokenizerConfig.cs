using System.Text.Json;
using System.Text.Json.Serialization;

namespace Blip2Sharp.Configuration;

/// <summary>A token as tokenizer files write it: a plain string or an AddedToken object.</summary>
[JsonConverter(typeof(AddedTokenConverter))]
public sealed record AddedToken
{
    public string Content { get; init; } = "";
    public bool Lstrip { get; init; }
    public bool Rstrip { get; init; }
    public bool Normalized { get; init; } = true;
    public bool SingleWord { get; init; }
    public bool Special { get; init; } = true;
}

public sealed class AddedTokenConverter : JsonConverter<AddedToken>
{
    public override AddedToken? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.String) return new AddedToken { Content = reader.GetString()! };
        if (reader.TokenType != JsonTokenType.StartObject) throw new JsonException("expected a token string or object");
        using var doc = JsonDocument.ParseValue(ref reader);
        var e = doc.RootElement;
        bool Flag(string name, bool fallback) => e.TryGetProperty(name, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : fallback;
        return new AddedToken
        {
            Content = e.TryGetProperty("content", out var c) ? c.GetString() ?? "" : throw new JsonException("token object without 'content'"),
            Lstrip = Flag("lstrip", false),
            Rstrip = Flag("rstrip", false),
            Normalized = Flag("normalized", true),
            SingleWord = Flag("single_word", false),
            Special = Flag("special", true),
        };
    }

    public override void Write(Utf8JsonWriter writer, AddedToken value, JsonSerializerOptions options)
    {
        writer.WriteStartObject();
        writer.WriteString("content", value.Content);
        writer.WriteBoolean("lstrip", value.Lstrip);
        writer.WriteBoolean("normalized", value.Normalized);
        writer.WriteBoolean("rstrip", value.Rstrip);
        writer.WriteBoolean("single_word", value.SingleWord);
        writer.WriteBoolean("special", value.Special);
        writer.WriteEndObject();
    }
}

/// <summary>special_tokens_map.json.</summary>
public sealed record SpecialTokensMap
{
    [JsonPropertyName("bos_token")] public AddedToken? BosToken { get; init; }
    [JsonPropertyName("eos_token")] public AddedToken? EosToken { get; init; }
    [JsonPropertyName("unk_token")] public AddedToken? UnkToken { get; init; }
    [JsonPropertyName("sep_token")] public AddedToken? SepToken { get; init; }
    [JsonPropertyName("pad_token")] public AddedToken? PadToken { get; init; }
    [JsonPropertyName("cls_token")] public AddedToken? ClsToken { get; init; }
    [JsonPropertyName("mask_token")] public AddedToken? MaskToken { get; init; }
    [JsonPropertyName("additional_special_tokens")] public AddedToken[]? AdditionalSpecialTokens { get; init; }

    public static SpecialTokensMap Load(string file, ConfigWarnings warnings) =>
        ConfigJson.Bind<SpecialTokensMap>(ConfigJson.ReadObject(file), file, warnings);
}

/// <summary>tokenizer_config.json of the slow tokenizers BLIP-2 uses (GPT2Tokenizer, T5Tokenizer, BertTokenizer).</summary>
public sealed record TokenizerConfig
{
    [JsonPropertyName("tokenizer_class")] public string? TokenizerClass { get; init; }
    [JsonPropertyName("added_tokens_decoder")] public Dictionary<string, AddedToken>? AddedTokensDecoder { get; init; }
    [JsonPropertyName("additional_special_tokens")] public AddedToken[]? AdditionalSpecialTokens { get; init; }
    [JsonPropertyName("bos_token")] public AddedToken? BosToken { get; init; }
    [JsonPropertyName("eos_token")] public AddedToken? EosToken { get; init; }
    [JsonPropertyName("unk_token")] public AddedToken? UnkToken { get; init; }
    [JsonPropertyName("sep_token")] public AddedToken? SepToken { get; init; }
    [JsonPropertyName("pad_token")] public AddedToken? PadToken { get; init; }
    [JsonPropertyName("cls_token")] public AddedToken? ClsToken { get; init; }
    [JsonPropertyName("mask_token")] public AddedToken? MaskToken { get; init; }
    [JsonPropertyName("add_bos_token")] public bool? AddBosToken { get; init; }
    [JsonPropertyName("add_eos_token")] public bool? AddEosToken { get; init; }
    [JsonPropertyName("add_prefix_space")] public bool? AddPrefixSpace { get; init; }
    [JsonPropertyName("clean_up_tokenization_spaces")] public bool? CleanUpTokenizationSpaces { get; init; }
    [JsonPropertyName("errors")] public string? Errors { get; init; }
    /// <summary>Written as a huge integer (1e30) by save_pretrained when unlimited; read as a double.</summary>
    [JsonPropertyName("model_max_length")] public double? ModelMaxLength { get; init; }
    [JsonPropertyName("padding_side")] public string? PaddingSide { get; init; }
    [JsonPropertyName("truncation_side")] public string? TruncationSide { get; init; }
    [JsonPropertyName("processor_class")] public string? ProcessorClass { get; init; }
    // T5Tokenizer
    [JsonPropertyName("extra_ids")] public int? ExtraIds { get; init; }
    [JsonPropertyName("legacy")] public bool? Legacy { get; init; }
    [JsonPropertyName("sp_model_kwargs")] public Dictionary<string, JsonElement>? SpModelKwargs { get; init; }
    // BertTokenizer
    [JsonPropertyName("do_lower_case")] public bool? DoLowerCase { get; init; }
    [JsonPropertyName("do_basic_tokenize")] public bool? DoBasicTokenize { get; init; }
    [JsonPropertyName("never_split")] public string[]? NeverSplit { get; init; }
    [JsonPropertyName("strip_accents")] public bool? StripAccents { get; init; }
    [JsonPropertyName("tokenize_chinese_chars")] public bool? TokenizeChineseChars { get; init; }

    public static TokenizerConfig Load(string file, ConfigWarnings warnings) =>
        ConfigJson.Bind<TokenizerConfig>(ConfigJson.ReadObject(file), file, warnings);
}
