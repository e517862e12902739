using Blip2Sharp.Configuration;

namespace Blip2Sharp.Processing.Tokenizers;

/// <summary>The result of encoding one text.</summary>
public sealed record Encoding(IReadOnlyList<int> Ids, IReadOnlyList<string> Tokens);

/// <summary>
/// The behaviour transformers' slow PreTrainedTokenizer shares across models: added tokens are split out of the text
/// first (longest match, honouring lstrip / rstrip), the rest goes to the model's own tokenizer; decoding keeps
/// "legacy" added tokens (added, outside the base vocabulary) apart and joins the parts with spaces; the
/// clean-up rules apply where the checkpoint asks for them.
/// </summary>
public abstract class Tokenizer
{
    private readonly Dictionary<string, int> _addedEncoder = new(StringComparer.Ordinal);
    private readonly Dictionary<int, AddedToken> _addedDecoder = [];
    private readonly HashSet<string> _specialTokens = new(StringComparer.Ordinal);
    private readonly HashSet<int> _specialIds = [];
    private readonly HashSet<string> _legacyAdded = new(StringComparer.Ordinal);
    private readonly List<string> _additionalSpecial = [];
    private List<string> _addedByLength = [];

    public string? BosToken { get; private set; }
    public string? EosToken { get; private set; }
    public string? UnkToken { get; private set; }
    public string? PadToken { get; private set; }
    public string? ClsToken { get; private set; }
    public string? SepToken { get; private set; }
    public string? MaskToken { get; private set; }
    public bool CleanUpTokenizationSpaces { get; protected set; }

    /// <summary>Size of the base vocabulary (without added tokens outside it).</summary>
    public abstract int VocabSize { get; }
    /// <summary>len(tokenizer): base vocabulary plus added tokens beyond it.</summary>
    public int Count => VocabSize + _addedDecoder.Keys.Count(id => id >= VocabSize);

    public int? BosTokenId => BosToken is null ? null : TokenToId(BosToken);
    public int? EosTokenId => EosToken is null ? null : TokenToId(EosToken);
    public int? PadTokenId => PadToken is null ? null : TokenToId(PadToken);
    public int? UnkTokenId => UnkToken is null ? null : TokenToId(UnkToken);
    public IReadOnlyCollection<int> SpecialIds => _specialIds;
    public IReadOnlyCollection<string> SpecialTokens => _specialTokens;

    protected abstract int? BaseTokenToId(string token);
    protected abstract string? BaseIdToToken(int id);
    /// <summary>Tokens of a chunk that holds no added token.</summary>
    protected abstract IEnumerable<string> TokenizeChunk(string chunk);
    protected abstract string ConvertTokensToString(IReadOnlyList<string> tokens);
    /// <summary>Adds the model's special tokens around one sequence (BOS, EOS, CLS/SEP).</summary>
    public abstract List<int> BuildInputsWithSpecialTokens(List<int> ids);

    /// <summary>Reads special tokens and added tokens from the checkpoint's tokenizer files.</summary>
    protected void ConfigureSpecialTokens(string folder, ConfigWarnings warnings)
    {
        string P(string f) => Path.Combine(folder, f);
        var config = File.Exists(P("tokenizer_config.json")) ? TokenizerConfig.Load(P("tokenizer_config.json"), warnings) : new TokenizerConfig();
        var map = File.Exists(P("special_tokens_map.json")) ? SpecialTokensMap.Load(P("special_tokens_map.json"), warnings) : new SpecialTokensMap();
        if (config.AddedTokensDecoder is { } decoder)
        {
            foreach (var (id, tok) in decoder) AddToken(int.Parse(id), tok);
        }
        if (File.Exists(P("added_tokens.json")))
        {
            foreach (var (content, node) in ConfigJson.ReadObject(P("added_tokens.json")))
            {
                int id = node!.GetValue<int>();
                if (!_addedDecoder.ContainsKey(id)) AddToken(id, new AddedToken { Content = content, Special = false });
            }
        }
        BosToken = (map.BosToken ?? config.BosToken)?.Content;
        EosToken = (map.EosToken ?? config.EosToken)?.Content;
        UnkToken = (map.UnkToken ?? config.UnkToken)?.Content;
        PadToken = (map.PadToken ?? config.PadToken)?.Content;
        ClsToken = (map.ClsToken ?? config.ClsToken)?.Content;
        SepToken = (map.SepToken ?? config.SepToken)?.Content;
        MaskToken = (map.MaskToken ?? config.MaskToken)?.Content;
        foreach (var t in map.AdditionalSpecialTokens ?? config.AdditionalSpecialTokens ?? []) _additionalSpecial.Add(t.Content);
        CleanUpTokenizationSpaces = config.CleanUpTokenizationSpaces ?? false;
        Configured = config;
        RebuildSpecials();
    }

    protected TokenizerConfig Configured { get; private set; } = new();

    /// <summary>Added and special tokens of a tokenizer.json (tokenizer_config.json, when present, names the specials).</summary>
    internal void ConfigureFromTokenizerJson(string folder, System.Text.Json.Nodes.JsonArray addedTokens, TokenizerJson.Template template, ConfigWarnings warnings)
    {
        foreach (var t in addedTokens)
        {
            AddToken(t!["id"]!.GetValue<int>(), new AddedToken
            {
                Content = t["content"]!.GetValue<string>(),
                Lstrip = t["lstrip"]?.GetValue<bool>() ?? false,
                Rstrip = t["rstrip"]?.GetValue<bool>() ?? false,
                Normalized = t["normalized"]?.GetValue<bool>() ?? true,
                SingleWord = t["single_word"]?.GetValue<bool>() ?? false,
                Special = t["special"]?.GetValue<bool>() ?? false,
            });
        }
        if (File.Exists(Path.Combine(folder, "tokenizer_config.json")) || File.Exists(Path.Combine(folder, "special_tokens_map.json")))
        {
            ConfigureSpecialTokens(folder, warnings);
            return;
        }
        // No config: take the specials from the post-processor template and the usual names.
        string? Named(params string[] names) => names.FirstOrDefault(n => _addedEncoder.ContainsKey(n));
        BosToken = template.Prefix.FirstOrDefault(p => p != "[CLS]") ?? Named("<s>");
        EosToken = template.Suffix.FirstOrDefault(p => p != "[SEP]") ?? Named("</s>");
        ClsToken = template.Prefix.FirstOrDefault(p => p == "[CLS]") ?? Named("[CLS]");
        SepToken = template.Suffix.FirstOrDefault(p => p == "[SEP]") ?? Named("[SEP]");
        UnkToken = Named("<unk>", "[UNK]");
        PadToken = Named("<pad>", "[PAD]");
        MaskToken = Named("<mask>", "[MASK]");
        foreach (var (content, id) in _addedEncoder)
        {
            if (_addedDecoder[id].Special && !new[] { BosToken, EosToken, ClsToken, SepToken, UnkToken, PadToken, MaskToken }.Contains(content))
                _additionalSpecial.Add(content);
        }
        RebuildSpecials();
    }

    protected void AddToken(int id, AddedToken token)
    {
        _addedDecoder[id] = token;
        _addedEncoder[token.Content] = id;
        _addedByLength = [.. _addedEncoder.Keys.OrderByDescending(k => k.Length)];
    }

    protected void RebuildSpecials()
    {
        _specialTokens.Clear();
        foreach (var t in new[] { BosToken, EosToken, UnkToken, SepToken, PadToken, ClsToken, MaskToken }.Concat(_additionalSpecial))
        {
            if (t is not null) _specialTokens.Add(t);
        }
        _specialIds.Clear();
        foreach (var t in _specialTokens) _specialIds.Add(TokenToId(t));
        // Added tokens decoded apart: added but not special, or additional special tokens beyond the base vocabulary.
        _legacyAdded.Clear();
        foreach (var t in _addedEncoder.Keys.Where(k => !_specialTokens.Contains(k))) _legacyAdded.Add(t);
        foreach (var t in _additionalSpecial.Where(t => TokenToId(t) >= VocabSize)) _legacyAdded.Add(t);
    }

    public int TokenToId(string token) =>
        _addedEncoder.TryGetValue(token, out int id) ? id
        : BaseTokenToId(token) ?? (UnkToken is not null && token != UnkToken ? TokenToId(UnkToken) : throw new KeyNotFoundException($"token '{token}' is not in the vocabulary."));

    public string IdToToken(int id) =>
        _addedDecoder.TryGetValue(id, out var t) ? t.Content
        : BaseIdToToken(id) ?? throw new ArgumentOutOfRangeException(nameof(id), $"id {id} is outside the tokenizer's {Count} tokens.");

    /// <summary>PreTrainedTokenizer.tokenize: added tokens split out first, the chunks tokenized by the model.</summary>
    public List<string> Tokenize(string text)
    {
        var pieces = SplitOnAddedTokens(text);
        var tokens = new List<string>();
        foreach (var (chunk, isAdded) in pieces)
        {
            if (isAdded) tokens.Add(chunk);
            else if (chunk.Length > 0) tokens.AddRange(TokenizeChunk(chunk));
        }
        return tokens;
    }

    private List<(string Text, bool IsAdded)> SplitOnAddedTokens(string text)
    {
        var parts = new List<(string, bool)>();
        int start = 0, i = 0;
        while (i < text.Length)
        {
            string? match = null;
            foreach (var t in _addedByLength)
            {
                if (t.Length > 0 && string.CompareOrdinal(text, i, t, 0, t.Length) == 0) { match = t; break; }
            }
            if (match is null) { i++; continue; }
            parts.Add((text[start..i], false));
            parts.Add((match, true));
            i += match.Length;
            start = i;
        }
        parts.Add((text[start..], false));
        // lstrip / rstrip of added tokens eat the whitespace next to them.
        for (int k = 0; k < parts.Count; k++)
        {
            if (!parts[k].Item2) continue;
            var tok = _addedDecoder[_addedEncoder[parts[k].Item1]];
            if (tok.Rstrip && k + 1 < parts.Count) parts[k + 1] = (parts[k + 1].Item1.TrimStart(), false);
            if (tok.Lstrip && k > 0) parts[k - 1] = (parts[k - 1].Item1.TrimEnd(), false);
        }
        return parts;
    }

    /// <summary>Ids of a text, with the model's special tokens when asked (the reference's default).</summary>
    public Encoding Encode(string text, bool addSpecialTokens = true)
    {
        var tokens = Tokenize(text);
        var ids = tokens.Select(TokenToId).ToList();
        if (addSpecialTokens) ids = BuildInputsWithSpecialTokens(ids);
        return new Encoding(ids, tokens);
    }

    /// <summary>
    /// Ids of a text with the model's special tokens, the text itself cut so that the whole fits in maxTokens
    /// (as the reference's truncation does: the specials are kept).
    /// </summary>
    public List<int> EncodeTruncated(string text, int maxTokens)
    {
        int specials = BuildInputsWithSpecialTokens([]).Count;
        return BuildInputsWithSpecialTokens([.. Encode(text, addSpecialTokens: false).Ids.Take(Math.Max(0, maxTokens - specials))]);
    }

    /// <summary>Rows of ids right-padded with the pad id → input_ids and attention_mask [B, T] (int64).</summary>
    public (TorchSharp.torch.Tensor InputIds, TorchSharp.torch.Tensor AttentionMask) PadRight(IReadOnlyList<IReadOnlyList<int>> rows)
    {
        int width = Math.Max(1, rows.Max(r => r.Count));
        long pad = PadTokenId ?? 0;
        var ids = rows.SelectMany(r => r.Select(x => (long)x).Concat(Enumerable.Repeat(pad, width - r.Count))).ToArray();
        var mask = rows.SelectMany(r => Enumerable.Repeat(1L, r.Count).Concat(Enumerable.Repeat(0L, width - r.Count))).ToArray();
        return (TorchSharp.torch.tensor(ids).reshape(rows.Count, width), TorchSharp.torch.tensor(mask).reshape(rows.Count, width));
    }

    /// <summary>Encodes texts and pads them to the longest with the pad id, on the left or the right.</summary>
    public (long[][] InputIds, long[][] AttentionMask) EncodeBatch(IReadOnlyList<string> texts, bool padLeft, bool addSpecialTokens = true)
    {
        var encoded = texts.Select(t => Encode(t, addSpecialTokens).Ids).ToList();
        int width = encoded.Count == 0 ? 0 : encoded.Max(e => e.Count);
        int pad = PadTokenId ?? throw new InvalidOperationException("this tokenizer has no pad token to pad a batch with.");
        var ids = new long[encoded.Count][];
        var mask = new long[encoded.Count][];
        for (int i = 0; i < encoded.Count; i++)
        {
            int padding = width - encoded[i].Count;
            var row = encoded[i].Select(x => (long)x);
            var ones = Enumerable.Repeat(1L, encoded[i].Count);
            ids[i] = padLeft ? [.. Enumerable.Repeat((long)pad, padding), .. row] : [.. row, .. Enumerable.Repeat((long)pad, padding)];
            mask[i] = padLeft ? [.. Enumerable.Repeat(0L, padding), .. ones] : [.. ones, .. Enumerable.Repeat(0L, padding)];
        }
        return (ids, mask);
    }

    /// <summary>The reference's decode: legacy added tokens apart, parts joined with spaces, optional clean-up.</summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false, bool? cleanUpTokenizationSpaces = null)
    {
        var subTexts = new List<string>();
        var current = new List<string>();
        foreach (int id in ids)
        {
            if (skipSpecialTokens && _specialIds.Contains(id)) continue;
            string token = IdToToken(id);
            if (skipSpecialTokens && _specialTokens.Contains(token)) continue;
            if (_legacyAdded.Contains(token))
            {
                if (current.Count > 0)
                {
                    string s = ConvertTokensToString(current);
                    if (s.Length > 0) subTexts.Add(s);
                    current = [];
                }
                subTexts.Add(token);
            }
            else current.Add(token);
        }
        if (current.Count > 0) subTexts.Add(ConvertTokensToString(current));
        string text = string.Join(" ", subTexts);
        return cleanUpTokenizationSpaces ?? CleanUpTokenizationSpaces ? CleanUp(text) : text;
    }

    /// <summary>clean_up_tokenization: no space before punctuation and English contractions.</summary>
    public static string CleanUp(string text) => text
        .Replace(" .", ".").Replace(" ?", "?").Replace(" !", "!").Replace(" ,", ",").Replace(" ' ", "'")
        .Replace(" n't", "n't").Replace(" 'm", "'m").Replace(" 's", "'s").Replace(" 've", "'ve").Replace(" 're", "'re");

    /// <summary>Loads the tokenizer a checkpoint folder ships, by its files (tokenizer_class when given).</summary>
    public static Tokenizer FromPretrained(string folder, ConfigWarnings? warnings = null)
    {
        warnings ??= new ConfigWarnings();
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"{folder}: tokenizer folder not found.");
        string P(string f) => Path.Combine(folder, f);
        if (File.Exists(P("vocab.json")) && File.Exists(P("merges.txt"))) return ByteLevelBpeTokenizer.FromFolder(folder, warnings);
        if (File.Exists(P("spiece.model"))) return SentencePieceTokenizer.FromFolder(folder, warnings);
        if (File.Exists(P("vocab.txt"))) return WordPieceTokenizer.FromFolder(folder, warnings);
        if (File.Exists(P("tokenizer.json"))) return TokenizerJson.Load(folder, warnings);
        throw new FileNotFoundException($"{folder}: no tokenizer files (vocab.json + merges.txt, spiece.model, vocab.txt or tokenizer.json).");
    }

    /// <summary>The code points of a string, as Python iterates it (surrogate pairs kept together).</summary>
    internal static List<string> CodePoints(string s)
    {
        var result = new List<string>(s.Length);
        for (int i = 0; i < s.Length;)
        {
            int len = char.IsSurrogatePair(s, i) ? 2 : 1;
            result.Add(s.Substring(i, len));
            i += len;
        }
        return result;
    }
}
