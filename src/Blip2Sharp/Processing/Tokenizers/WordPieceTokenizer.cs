using System.Globalization;
using System.Text;
using Blip2Sharp.Configuration;

namespace Blip2Sharp.Processing.Tokenizers;

/// <summary>
/// BERT's tokenizer (the Q-Former's): BasicTokenizer (clean-up of control characters, spaces around CJK
/// ideographs, NFC, lower-casing and accent stripping when uncased, split on punctuation), then greedy
/// longest-match WordPiece with "##" continuations; [CLS] … [SEP] around every text.
/// </summary>
public sealed class WordPieceTokenizer : Tokenizer
{
    private const int MaxInputCharsPerWord = 100;
    private readonly Dictionary<string, int> _vocab;
    private readonly string[] _idToToken;
    private readonly bool _lowerCase, _stripAccents, _chineseChars, _basic;

    public WordPieceTokenizer(List<string> vocab, bool lowerCase, bool? stripAccents, bool tokenizeChineseChars, bool basicTokenize)
    {
        _vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < vocab.Count; i++) _vocab.TryAdd(vocab[i], i);
        _idToToken = [.. vocab];
        _lowerCase = lowerCase;
        _stripAccents = stripAccents ?? lowerCase; // strip_accents None follows do_lower_case
        _chineseChars = tokenizeChineseChars;
        _basic = basicTokenize;
        CleanUpTokenizationSpaces = true;
    }

    public override int VocabSize => _idToToken.Length;

    public static WordPieceTokenizer FromFolder(string folder, ConfigWarnings warnings)
    {
        var vocab = File.ReadAllLines(Path.Combine(folder, "vocab.txt")).Select(l => l.TrimEnd('\r', '\n')).ToList();
        while (vocab.Count > 0 && vocab[^1].Length == 0) vocab.RemoveAt(vocab.Count - 1);
        var config = File.Exists(Path.Combine(folder, "tokenizer_config.json"))
            ? TokenizerConfig.Load(Path.Combine(folder, "tokenizer_config.json"), warnings) : new TokenizerConfig();
        var t = new WordPieceTokenizer(vocab, config.DoLowerCase ?? true, config.StripAccents, config.TokenizeChineseChars ?? true, config.DoBasicTokenize ?? true);
        t.ConfigureSpecialTokens(folder, warnings);
        t.CleanUpTokenizationSpaces = config.CleanUpTokenizationSpaces ?? true;
        return t;
    }

    protected override int? BaseTokenToId(string token) => _vocab.TryGetValue(token, out int id) ? id : null;
    protected override string? BaseIdToToken(int id) => id >= 0 && id < _idToToken.Length ? _idToToken[id] : null;

    public override List<int> BuildInputsWithSpecialTokens(List<int> ids) =>
        [TokenToId(ClsToken ?? "[CLS]"), .. ids, TokenToId(SepToken ?? "[SEP]")];

    protected override string ConvertTokensToString(IReadOnlyList<string> tokens) =>
        string.Join(" ", tokens).Replace(" ##", "").Trim();

    protected override IEnumerable<string> TokenizeChunk(string chunk)
    {
        var words = _basic ? BasicTokenize(chunk) : Whitespace(chunk);
        foreach (var w in words)
        {
            if (SpecialTokens.Contains(w)) { yield return w; continue; }
            foreach (var p in WordPiece(w)) yield return p;
        }
    }

    private static List<string> Whitespace(string s) => [.. s.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)];

    private List<string> BasicTokenize(string text)
    {
        var sb = new StringBuilder();
        foreach (var cp in CodePoints(text))
        {
            int c = char.ConvertToUtf32(cp, 0);
            if (c == 0 || c == 0xFFFD || IsControl(cp)) continue;
            if (IsWhitespace(cp)) { sb.Append(' '); continue; }
            if (_chineseChars && IsChinese(c)) sb.Append(' ').Append(cp).Append(' ');
            else sb.Append(cp);
        }
        var output = new List<string>();
        foreach (var token0 in Whitespace(sb.ToString().Normalize(NormalizationForm.FormC)))
        {
            string token = token0;
            if (!SpecialTokens.Contains(token))
            {
                if (_lowerCase) token = token.ToLowerInvariant();
                if (_stripAccents) token = StripAccents(token);
            }
            output.AddRange(SpecialTokens.Contains(token) ? [token] : SplitOnPunctuation(token));
        }
        return Whitespace(string.Join(" ", output));
    }

    private static string StripAccents(string s)
    {
        var sb = new StringBuilder();
        foreach (char ch in s.Normalize(NormalizationForm.FormD))
        {
            if (CharUnicodeInfo.GetUnicodeCategory(ch) != UnicodeCategory.NonSpacingMark) sb.Append(ch);
        }
        return sb.ToString();
    }

    private static List<string> SplitOnPunctuation(string s)
    {
        var result = new List<string>();
        var current = new StringBuilder();
        foreach (var cp in CodePoints(s))
        {
            if (IsPunctuation(cp))
            {
                if (current.Length > 0) { result.Add(current.ToString()); current.Clear(); }
                result.Add(cp);
            }
            else current.Append(cp);
        }
        if (current.Length > 0) result.Add(current.ToString());
        return result;
    }

    private IEnumerable<string> WordPiece(string word)
    {
        var chars = CodePoints(word);
        if (chars.Count > MaxInputCharsPerWord) return [UnkToken ?? "[UNK]"];
        var pieces = new List<string>();
        int start = 0;
        while (start < chars.Count)
        {
            int end = chars.Count;
            string? found = null;
            while (start < end)
            {
                string sub = string.Concat(chars.Skip(start).Take(end - start));
                if (start > 0) sub = "##" + sub;
                if (_vocab.ContainsKey(sub)) { found = sub; break; }
                end--;
            }
            if (found is null) return [UnkToken ?? "[UNK]"];
            pieces.Add(found);
            start = end;
        }
        return pieces;
    }

    private static UnicodeCategory Category(string cp) => CharUnicodeInfo.GetUnicodeCategory(cp, 0);

    private static bool IsWhitespace(string cp) =>
        cp is " " or "\t" or "\n" or "\r" || Category(cp) == UnicodeCategory.SpaceSeparator;

    private static bool IsControl(string cp)
    {
        if (cp is "\t" or "\n" or "\r") return false;
        return Category(cp) is UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.Surrogate
            or UnicodeCategory.PrivateUse or UnicodeCategory.OtherNotAssigned;
    }

    private static bool IsPunctuation(string cp)
    {
        int c = char.ConvertToUtf32(cp, 0);
        if (c is >= 33 and <= 47 or >= 58 and <= 64 or >= 91 and <= 96 or >= 123 and <= 126) return true;
        return Category(cp) is UnicodeCategory.ConnectorPunctuation or UnicodeCategory.DashPunctuation or UnicodeCategory.OpenPunctuation
            or UnicodeCategory.ClosePunctuation or UnicodeCategory.InitialQuotePunctuation or UnicodeCategory.FinalQuotePunctuation
            or UnicodeCategory.OtherPunctuation;
    }

    private static bool IsChinese(int c) =>
        c is >= 0x4E00 and <= 0x9FFF or >= 0x3400 and <= 0x4DBF or >= 0x20000 and <= 0x2A6DF or >= 0x2A700 and <= 0x2B73F
            or >= 0x2B740 and <= 0x2B81F or >= 0x2B820 and <= 0x2CEAF or >= 0xF900 and <= 0xFAFF or >= 0x2F800 and <= 0x2FA1F;
}
