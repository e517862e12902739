using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Blip2Sharp.Configuration;

/// <summary>Warnings raised while reading a checkpoint's JSON files; each distinct warning is kept once.</summary>
public sealed class ConfigWarnings
{
    private readonly HashSet<string> _seen = new(StringComparer.Ordinal);
    private readonly List<string> _items = [];

    public IReadOnlyList<string> Items => _items;

    public void Add(string warning)
    {
        if (_seen.Add(warning)) _items.Add(warning);
    }
}

/// <summary>Reads and binds the snake_case JSON files of a Hugging Face checkpoint folder.</summary>
public static class ConfigJson
{
    internal static readonly JsonSerializerOptions Options = new()
    {
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
    };

    private static readonly JsonDocumentOptions DocumentOptions = new()
    {
        AllowTrailingCommas = true,
        CommentHandling = JsonCommentHandling.Skip,
    };

    /// <summary>
    /// Keys every transformers PretrainedConfig accepts (generation defaults, labels, bookkeeping). They are
    /// understood by the reference's base class, so they are not reported when a model config carries them.
    /// </summary>
    public static IReadOnlySet<string> PretrainedConfigKeys { get; } = new HashSet<string>(StringComparer.Ordinal)
    {
        "return_dict", "output_hidden_states", "output_attentions", "torchscript", "torch_dtype", "use_bfloat16",
        "tf_legacy_loss", "pruned_heads", "tie_word_embeddings", "chunk_size_feed_forward", "is_encoder_decoder",
        "is_decoder", "cross_attention_hidden_size", "add_cross_attention", "tie_encoder_decoder", "max_length",
        "min_length", "do_sample", "early_stopping", "num_beams", "num_beam_groups", "diversity_penalty",
        "temperature", "top_k", "top_p", "typical_p", "repetition_penalty", "length_penalty",
        "no_repeat_ngram_size", "encoder_no_repeat_ngram_size", "bad_words_ids", "num_return_sequences",
        "output_scores", "return_dict_in_generate", "forced_bos_token_id", "forced_eos_token_id",
        "remove_invalid_values", "exponential_decay_length_penalty", "suppress_tokens", "begin_suppress_tokens",
        "architectures", "finetuning_task", "id2label", "label2id", "num_labels", "tokenizer_class", "prefix",
        "bos_token_id", "pad_token_id", "eos_token_id", "sep_token_id", "decoder_start_token_id",
        "task_specific_params", "problem_type", "_name_or_path", "_commit_hash", "_attn_implementation_autoset",
        "_attn_implementation", "transformers_version", "model_type", "gradient_checkpointing", "use_cache",
    };

    /// <summary>Parses a JSON object file; a missing file or invalid JSON is a typed error naming the file.</summary>
    public static JsonObject ReadObject(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: file not found.", path);
        string text = File.ReadAllText(path);
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(text, documentOptions: DocumentOptions);
        }
        catch (JsonException e)
        {
            throw new InvalidConfigException($"{path}: not valid JSON ({e.Message}).", e);
        }
        return node as JsonObject ?? throw new InvalidConfigException($"{path}: expected a JSON object at the top level.");
    }

    /// <summary>
    /// Binds <paramref name="json"/> to <typeparamref name="T"/> (defaults of the record fill missing keys) and
    /// reports every key that neither <typeparamref name="T"/> nor <paramref name="alsoKnown"/> names.
    /// </summary>
    public static T Bind<T>(JsonObject json, string where, ConfigWarnings warnings, IEnumerable<string>? alsoKnown = null)
    {
        var known = new HashSet<string>(JsonNames(typeof(T)), StringComparer.Ordinal);
        if (alsoKnown is not null) known.UnionWith(alsoKnown);
        foreach (var (key, _) in json)
        {
            if (!known.Contains(key))
                warnings.Add($"{where}: key '{key}' is not understood by Blip2Sharp and was ignored.");
        }
        var bindable = new JsonObject();
        foreach (var (key, value) in json)
        {
            if (JsonNames(typeof(T)).Contains(key)) bindable[key] = value?.DeepClone();
        }
        try
        {
            return bindable.Deserialize<T>(Options)
                ?? throw new InvalidConfigException($"{where}: expected a JSON object.");
        }
        catch (JsonException e)
        {
            throw new InvalidConfigException($"{where}: value of '{e.Path?.TrimStart('$', '.')}' has the wrong type ({e.Message}).", e);
        }
    }

    private static readonly Dictionary<Type, HashSet<string>> NameCache = [];

    private static HashSet<string> JsonNames(Type type)
    {
        lock (NameCache)
        {
            if (NameCache.TryGetValue(type, out var names)) return names;
            names = new HashSet<string>(StringComparer.Ordinal);
            foreach (var p in type.GetProperties(BindingFlags.Public | BindingFlags.Instance))
            {
                if (p.GetCustomAttribute<JsonIgnoreAttribute>() is not null) continue;
                names.Add(p.GetCustomAttribute<JsonPropertyNameAttribute>()?.Name ?? p.Name);
            }
            NameCache[type] = names;
            return names;
        }
    }
}

/// <summary>Reads a token id field that may be a single id or a list of ids (as eos_token_id may be).</summary>
public sealed class IdListConverter : JsonConverter<int[]?>
{
    public override int[]? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.Null: return null;
            case JsonTokenType.Number: return [reader.GetInt32()];
            case JsonTokenType.StartArray:
                var ids = new List<int>();
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray) ids.Add(reader.GetInt32());
                return [.. ids];
            default: throw new JsonException("expected a token id or a list of token ids");
        }
    }

    public override void Write(Utf8JsonWriter writer, int[]? value, JsonSerializerOptions options)
    {
        if (value is null) { writer.WriteNullValue(); return; }
        if (value.Length == 1) { writer.WriteNumberValue(value[0]); return; }
        writer.WriteStartArray();
        foreach (var v in value) writer.WriteNumberValue(v);
        writer.WriteEndArray();
    }
}
