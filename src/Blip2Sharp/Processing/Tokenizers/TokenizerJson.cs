using System.Text.Json.Nodes;
using Blip2Sharp.Configuration;

namespace Blip2Sharp.Processing.Tokenizers;

/// <summary>
/// Reads tokenizer.json (the fast tokenizers' single file) when a repository has no slow tokenizer files: a BPE
/// model (byte-level, OPT), a Unigram model with its precompiled character map (T5), or WordPiece (BERT). Added
/// tokens come from its added_tokens list; which specials wrap a text comes from tokenizer_config.json when present,
/// otherwise from the file's TemplateProcessing post-processor.
/// </summary>
public static class TokenizerJson
{
    public static Tokenizer Load(string folder, ConfigWarnings warnings)
    {
        string path = Path.Combine(folder, "tokenizer.json");
        var json = ConfigJson.ReadObject(path);
        var model = json["model"] as JsonObject ?? throw new InvalidConfigException($"{path}: no 'model' object.");
        string type = model["type"]?.GetValue<string>() ?? (model["merges"] is not null ? "BPE" : "");
        var template = TemplateSpecials(json["post_processor"]);
        var config = File.Exists(Path.Combine(folder, "tokenizer_config.json"))
            ? TokenizerConfig.Load(Path.Combine(folder, "tokenizer_config.json"), warnings) : new TokenizerConfig();
        Tokenizer tokenizer = type switch
        {
            "BPE" => new ByteLevelBpeTokenizer(
                ByteLevelBpeTokenizer.ReadVocab(model["vocab"] as JsonObject ?? throw new InvalidConfigException($"{path}: BPE model without vocab.")),
                (model["merges"] as JsonArray ?? []).Select(Merge),
                addBos: config.AddBosToken ?? template.Prefix.Count > 0, addEos: config.AddEosToken ?? template.Suffix.Count > 0),
            "Unigram" => new SentencePieceTokenizer(UnigramModel(model, json["normalizer"], path)),
            "WordPiece" => WordPiece(model, json["normalizer"] as JsonObject),
            _ => throw new InvalidConfigException($"{path}: tokenizer model type '{type}' is not supported (BPE, Unigram, WordPiece)."),
        };
        tokenizer.ConfigureFromTokenizerJson(folder, json["added_tokens"] as JsonArray ?? [], template, warnings);
        return tokenizer;
    }

    internal sealed record Template(List<string> Prefix, List<string> Suffix);

    /// <summary>The special tokens TemplateProcessing puts around a single sequence ($A).</summary>
    private static Template TemplateSpecials(JsonNode? post)
    {
        var prefix = new List<string>();
        var suffix = new List<string>();
        if (post?["type"]?.GetValue<string>() == "TemplateProcessing" && post["single"] is JsonArray single)
        {
            bool seenA = false;
            foreach (var item in single)
            {
                if (item?["Sequence"] is not null) { seenA = true; continue; }
                if (item?["SpecialToken"]?["id"]?.GetValue<string>() is { } id) (seenA ? suffix : prefix).Add(id);
            }
        }
        else if (post?["type"]?.GetValue<string>() is "BertProcessing" or "RobertaProcessing")
        {
            prefix.Add(post["cls"]![0]!.GetValue<string>());
            suffix.Add(post["sep"]![0]!.GetValue<string>());
        }
        return new Template(prefix, suffix);
    }

    private static (string, string) Merge(JsonNode? m) => m switch
    {
        JsonArray a => (a[0]!.GetValue<string>(), a[1]!.GetValue<string>()),
        _ => m!.GetValue<string>().Split(' ', 2) is [var x, var y] ? (x, y) : throw new InvalidConfigException($"invalid merge '{m}'."),
    };

    private static SentencePieceModel UnigramModel(JsonObject model, JsonNode? normalizer, string path)
    {
        int unk = model["unk_id"]?.GetValue<int>() ?? 0;
        var pieces = (model["vocab"] as JsonArray ?? throw new InvalidConfigException($"{path}: Unigram model without vocab."))
            .Select((v, i) => (v![0]!.GetValue<string>(), (float)v[1]!.GetValue<double>(),
                i == unk ? SentencePieceModel.PieceType.Unknown : SentencePieceModel.PieceType.Normal))
            .ToList();
        byte[] charsmap = [];
        foreach (var n in Flatten(normalizer))
        {
            if (n["type"]?.GetValue<string>() == "Precompiled" && n["precompiled_charsmap"]?.GetValue<string>() is { } b64)
                charsmap = Convert.FromBase64String(b64);
        }
        // Added tokens such as <pad> and </s> are control symbols: never matched inside text.
        return new SentencePieceModel(pieces, unk, charsmap, addDummyPrefix: true, removeExtraWhitespaces: true, escapeWhitespaces: true);
    }

    private static IEnumerable<JsonObject> Flatten(JsonNode? node)
    {
        if (node is not JsonObject o) yield break;
        if (o["normalizers"] is JsonArray list) foreach (var n in list) foreach (var x in Flatten(n)) yield return x;
        else yield return o;
    }

    private static WordPieceTokenizer WordPiece(JsonObject model, JsonObject? normalizer)
    {
        var vocab = (model["vocab"] as JsonObject ?? []).OrderBy(kv => kv.Value!.GetValue<int>()).Select(kv => kv.Key).ToList();
        var bert = Flatten(normalizer).FirstOrDefault(n => n["type"]?.GetValue<string>() == "BertNormalizer");
        bool lower = bert?["lowercase"]?.GetValue<bool>() ?? true;
        bool? strip = bert?["strip_accents"] is JsonValue v && v.TryGetValue<bool>(out bool s) ? s : null;
        bool chinese = bert?["handle_chinese_chars"]?.GetValue<bool>() ?? true;
        return new WordPieceTokenizer(vocab, lower, strip, chinese, basicTokenize: true);
    }
}
