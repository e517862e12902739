using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Blip2Sharp.Configuration;

namespace Blip2Sharp.Processing.Tokenizers;

/// <summary>
/// GPT-2 byte-level BPE (OPT's GPT2Tokenizer): the GPT-2 pre-tokenisation regex, bytes mapped to printable
/// characters, merges applied by rank. OPT prepends &lt;/s&gt; (add_bos_token) to every text, "" included.
/// </summary>
public sealed partial class ByteLevelBpeTokenizer : Tokenizer
{
    [GeneratedRegex(@"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+")]
    private static partial Regex PreTokenize();

    private static readonly char[] ByteToChar = BuildByteMap();

    /// <summary>The 256 byte symbols of GPT-2's byte-level alphabet, in byte order.</summary>
    public static IReadOnlyList<string> ByteSymbols { get; } = [.. ByteToChar.Select(c => c.ToString())];
    private static readonly Dictionary<char, byte> CharToByte = ByteToChar.Select((c, b) => (c, (byte)b)).ToDictionary(p => p.c, p => p.Item2);

    private readonly Dictionary<string, int> _vocab;
    private readonly string[] _idToToken;
    private readonly Dictionary<(string, string), int> _ranks;
    private readonly Dictionary<string, string[]> _cache = new(StringComparer.Ordinal);
    private readonly bool _addBos, _addEos;

    public ByteLevelBpeTokenizer(Dictionary<string, int> vocab, IEnumerable<(string, string)> merges, bool addBos, bool addEos)
    {
        _vocab = vocab;
        _idToToken = new string[vocab.Count == 0 ? 0 : vocab.Values.Max() + 1];
        foreach (var (t, id) in vocab) _idToToken[id] = t;
        _ranks = [];
        int rank = 0;
        foreach (var m in merges) _ranks.TryAdd(m, rank++);
        _addBos = addBos;
        _addEos = addEos;
    }

    public override int VocabSize => _vocab.Count;

    public static ByteLevelBpeTokenizer FromFolder(string folder, ConfigWarnings warnings)
    {
        var vocab = ReadVocab(ConfigJson.ReadObject(Path.Combine(folder, "vocab.json")));
        var merges = File.ReadLines(Path.Combine(folder, "merges.txt"))
            .Where(l => l.Length > 0 && !l.StartsWith("#version"))
            .Select(l => l.Split(' ')).Where(p => p.Length == 2).Select(p => (p[0], p[1]));
        var config = File.Exists(Path.Combine(folder, "tokenizer_config.json"))
            ? TokenizerConfig.Load(Path.Combine(folder, "tokenizer_config.json"), warnings) : new TokenizerConfig();
        var t = new ByteLevelBpeTokenizer(vocab, merges, config.AddBosToken ?? false, config.AddEosToken ?? false);
        t.ConfigureSpecialTokens(folder, warnings);
        return t;
    }

    internal static Dictionary<string, int> ReadVocab(JsonObject json) =>
        json.ToDictionary(kv => kv.Key, kv => kv.Value!.GetValue<int>(), StringComparer.Ordinal);

    protected override int? BaseTokenToId(string token) => _vocab.TryGetValue(token, out int id) ? id : null;
    protected override string? BaseIdToToken(int id) => id >= 0 && id < _idToToken.Length ? _idToToken[id] : null;

    public override List<int> BuildInputsWithSpecialTokens(List<int> ids)
    {
        var result = new List<int>(ids.Count + 2);
        if (_addBos && BosTokenId is { } bos) result.Add(bos);
        result.AddRange(ids);
        if (_addEos && EosTokenId is { } eos) result.Add(eos);
        return result;
    }

    protected override IEnumerable<string> TokenizeChunk(string chunk)
    {
        foreach (Match m in PreTokenize().Matches(chunk))
        {
            var bytes = System.Text.Encoding.UTF8.GetBytes(m.Value);
            var mapped = new string(bytes.Select(b => ByteToChar[b]).ToArray());
            foreach (var piece in Bpe(mapped)) yield return piece;
        }
    }

    private string[] Bpe(string token)
    {
        if (_cache.TryGetValue(token, out var cached)) return cached;
        var word = token.Select(c => c.ToString()).ToList();
        while (word.Count > 1)
        {
            int best = int.MaxValue, at = -1;
            for (int i = 0; i < word.Count - 1; i++)
            {
                if (_ranks.TryGetValue((word[i], word[i + 1]), out int r) && r < best) { best = r; at = i; }
            }
            if (at < 0) break;
            var (first, second) = (word[at], word[at + 1]);
            var merged = new List<string>(word.Count);
            for (int i = 0; i < word.Count;)
            {
                if (i < word.Count - 1 && word[i] == first && word[i + 1] == second) { merged.Add(first + second); i += 2; }
                else merged.Add(word[i++]);
            }
            word = merged;
        }
        var result = word.ToArray();
        if (_cache.Count < 100_000) _cache[token] = result;
        return result;
    }

    protected override string ConvertTokensToString(IReadOnlyList<string> tokens)
    {
        var bytes = new List<byte>();
        foreach (var t in tokens)
        {
            foreach (char c in t)
            {
                if (CharToByte.TryGetValue(c, out byte b)) bytes.Add(b);
                else bytes.AddRange(System.Text.Encoding.UTF8.GetBytes(c.ToString()));
            }
        }
        return System.Text.Encoding.UTF8.GetString(bytes.ToArray()); // invalid sequences become U+FFFD (errors="replace")
    }

    /// <summary>GPT-2's bytes_to_unicode: printable bytes map to themselves, the others to 256 + n.</summary>
    private static char[] BuildByteMap()
    {
        var map = new char[256];
        var printable = new List<int>();
        for (int b = '!'; b <= '~'; b++) printable.Add(b);
        for (int b = 0xA1; b <= 0xAC; b++) printable.Add(b);
        for (int b = 0xAE; b <= 0xFF; b++) printable.Add(b);
        foreach (int b in printable) map[b] = (char)b;
        int n = 0;
        for (int b = 0; b < 256; b++)
        {
            if (!printable.Contains(b)) map[b] = (char)(256 + n++);
        }
        return map;
    }
}
