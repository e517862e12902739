using System.Text;

namespace Blip2Sharp.Processing.Tokenizers;

/// <summary>
/// A SentencePiece unigram model read from its protobuf (spiece.model): pieces with scores and types, and the
/// normaliser (the precompiled character map of nmt_nfkc, dummy prefix, whitespace handling). Encoding is the
/// library's: normalise, Viterbi over the piece lattice (unknown characters get min score − 10, and consecutive
/// unknown characters are merged into one piece).
/// </summary>
public sealed class SentencePieceModel
{
    public enum PieceType { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 }

    private const string SpaceSymbol = "\u2581";
    private const float UnkPenalty = 10.0f;

    public IReadOnlyList<(string Piece, float Score, PieceType Type)> Pieces { get; }
    private readonly Dictionary<string, int> _pieceToId = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _matchable = new(StringComparer.Ordinal);
    private readonly int _maxPieceChars;
    private readonly float _minScore, _maxScore;
    private readonly uint[] _trie;
    private readonly byte[] _normalized;
    private readonly bool _addDummyPrefix, _removeExtraWhitespaces, _escapeWhitespaces;

    public int UnkId { get; }

    public SentencePieceModel(List<(string, float, PieceType)> pieces, int unkId, byte[] charsmap, bool addDummyPrefix, bool removeExtraWhitespaces, bool escapeWhitespaces)
    {
        Pieces = pieces;
        UnkId = unkId;
        _minScore = float.MaxValue;
        _maxScore = float.MinValue;
        for (int i = 0; i < pieces.Count; i++)
        {
            var (p, score, type) = pieces[i];
            _pieceToId.TryAdd(p, i);
            if (type is PieceType.Normal or PieceType.UserDefined or PieceType.Unused)
            {
                _matchable.TryAdd(p, i);
                _maxPieceChars = Math.Max(_maxPieceChars, Tokenizer.CodePoints(p).Count);
            }
            if (type == PieceType.Normal)
            {
                _minScore = Math.Min(_minScore, score);
                _maxScore = Math.Max(_maxScore, score);
            }
        }
        (_trie, _normalized) = ParseCharsmap(charsmap);
        _addDummyPrefix = addDummyPrefix;
        _removeExtraWhitespaces = removeExtraWhitespaces;
        _escapeWhitespaces = escapeWhitespaces;
    }

    public int Count => Pieces.Count;
    public int? PieceToId(string piece) => _pieceToId.TryGetValue(piece, out int id) ? id : null;

    public static SentencePieceModel Load(byte[] model, string name)
    {
        var pieces = new List<(string, float, PieceType)>();
        int unkId = 0, modelType = 1;
        byte[] charsmap = [];
        bool dummy = true, removeWs = true, escapeWs = true;
        try
        {
            foreach (var (field, wire, value, bytes) in Proto.Read(model))
            {
                switch (field)
                {
                    case 1 when wire == 2:
                        string piece = "";
                        float score = 0;
                        var type = PieceType.Normal;
                        foreach (var (f, w, v, b) in Proto.Read(bytes!))
                        {
                            if (f == 1 && w == 2) piece = System.Text.Encoding.UTF8.GetString(b!);
                            else if (f == 2 && w == 5) score = BitConverter.Int32BitsToSingle((int)v);
                            else if (f == 3 && w == 0) type = (PieceType)v;
                        }
                        pieces.Add((piece, score, type));
                        break;
                    case 2 when wire == 2:
                        foreach (var (f, w, v, _) in Proto.Read(bytes!))
                        {
                            if (f == 3 && w == 0) modelType = (int)v;
                            else if (f == 40 && w == 0) unkId = (int)v;
                        }
                        break;
                    case 3 when wire == 2:
                        foreach (var (f, w, v, b) in Proto.Read(bytes!))
                        {
                            if (f == 2 && w == 2) charsmap = b!;
                            else if (f == 3 && w == 0) dummy = v != 0;
                            else if (f == 4 && w == 0) removeWs = v != 0;
                            else if (f == 5 && w == 0) escapeWs = v != 0;
                        }
                        break;
                }
            }
        }
        catch (Exception e) when (e is IndexOutOfRangeException or ArgumentException or OverflowException)
        {
            throw new Blip2Exception($"{name}: not a valid SentencePiece model ({e.Message}).", e);
        }
        if (modelType != 1) throw new Blip2Exception($"{name}: SentencePiece model type {modelType} is not supported (only unigram, as T5 uses).");
        if (pieces.Count == 0) throw new Blip2Exception($"{name}: the SentencePiece model has no pieces.");
        return new SentencePieceModel(pieces, unkId, charsmap, dummy, removeWs, escapeWs);
    }

    // ---- normalisation -------------------------------------------------------------------------------------

    private static (uint[], byte[]) ParseCharsmap(byte[] blob)
    {
        if (blob.Length < 4) return ([], []);
        uint trieSize = BitConverter.ToUInt32(blob, 0);
        var trie = new uint[trieSize / 4];
        Buffer.BlockCopy(blob, 4, trie, 0, (int)trieSize);
        return (trie, blob[(4 + (int)trieSize)..]);
    }

    /// <summary>darts-clone common prefix search: the longest key of the trie that prefixes bytes[pos..].</summary>
    private (int Length, uint Value) LongestMatch(byte[] bytes, int pos)
    {
        if (_trie.Length == 0) return (0, 0);
        static uint Offset(uint u) => (u >> 10) << (int)((u & (1u << 9)) >> 6);
        static bool HasLeaf(uint u) => ((u >> 8) & 1) == 1;
        static uint Label(uint u) => u & ((1u << 31) | 0xFF);
        uint node = 0;
        uint unit = _trie[node];
        node ^= Offset(unit);
        int best = 0;
        uint bestValue = 0;
        for (int i = pos; i < bytes.Length; i++)
        {
            node ^= bytes[i];
            if (node >= _trie.Length) break;
            unit = _trie[node];
            if (Label(unit) != bytes[i]) break;
            node ^= Offset(unit);
            if (HasLeaf(unit))
            {
                best = i - pos + 1;
                bestValue = _trie[node] & ((1u << 31) - 1);
            }
        }
        return (best, bestValue);
    }

    /// <summary>NormalizePrefix: the replacement of the longest charsmap match, or one UTF-8 character as is.</summary>
    private (byte[] Output, int Consumed) NormalizePrefix(byte[] bytes, int pos)
    {
        var (len, value) = LongestMatch(bytes, pos);
        if (len > 0)
        {
            int end = Array.IndexOf(_normalized, (byte)0, (int)value);
            if (end < 0) end = _normalized.Length;
            return (_normalized[(int)value..end], len);
        }
        int n = Utf8Length(bytes, pos);
        if (n == 0) return ("\uFFFD"u8.ToArray(), 1); // malformed UTF-8
        return (bytes[pos..(pos + n)], n);
    }

    private static int Utf8Length(byte[] b, int pos)
    {
        byte c = b[pos];
        int n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (n == 0 || pos + n > b.Length) return 0;
        for (int i = 1; i < n; i++) if ((b[pos + i] & 0xC0) != 0x80) return 0;
        return n;
    }

    public string Normalize(string text)
    {
        var input = System.Text.Encoding.UTF8.GetBytes(text);
        int pos = 0;
        if (_removeExtraWhitespaces)
        {
            while (pos < input.Length)
            {
                var (o, c) = NormalizePrefix(input, pos);
                if (!(o.Length == 1 && o[0] == (byte)' ')) break;
                pos += c;
            }
        }
        if (pos >= input.Length) return "";
        var output = new List<byte>();
        var space = System.Text.Encoding.UTF8.GetBytes(SpaceSymbol);
        if (_addDummyPrefix) output.AddRange(_escapeWhitespaces ? space : [(byte)' ']);
        bool prevSpace = _removeExtraWhitespaces;
        while (pos < input.Length)
        {
            var (sp, consumed) = NormalizePrefix(input, pos);
            int start = 0;
            if (prevSpace) while (start < sp.Length && sp[start] == (byte)' ') start++;
            if (start < sp.Length)
            {
                for (int n = start; n < sp.Length; n++)
                {
                    if (_escapeWhitespaces && sp[n] == (byte)' ') output.AddRange(space);
                    else output.Add(sp[n]);
                }
                prevSpace = sp[^1] == (byte)' ';
            }
            pos += consumed;
            prevSpace = prevSpace && _removeExtraWhitespaces;
        }
        string result = System.Text.Encoding.UTF8.GetString(output.ToArray());
        if (_removeExtraWhitespaces)
        {
            while (result.EndsWith(SpaceSymbol, StringComparison.Ordinal)) result = result[..^SpaceSymbol.Length];
        }
        return result;
    }

    // ---- unigram encoding ----------------------------------------------------------------------------------

    /// <summary>Pieces of a text: normalised, best segmentation by Viterbi, runs of unknown characters merged.</summary>
    public List<(string Piece, int Id)> Encode(string text)
    {
        var chars = Tokenizer.CodePoints(Normalize(text));
        int n = chars.Count;
        var result = new List<(string, int)>();
        if (n == 0) return result;
        float unkScore = _minScore - UnkPenalty;
        var best = new float[n + 1];
        var backPos = new int[n + 1];
        var backId = new int[n + 1];
        var reached = new bool[n + 1];
        reached[0] = true;
        // Viterbi in SentencePiece's order: positions ascending, the nodes starting there (pieces by length, then the
        // unknown node); a node improves the best path to its end only with a strictly higher score.
        for (int start = 0; start < n; start++)
        {
            if (!reached[start]) continue;
            bool hasSingle = false;
            var sb = new StringBuilder();
            for (int len = 1; len <= _maxPieceChars && start + len <= n; len++)
            {
                sb.Append(chars[start + len - 1]);
                if (!_matchable.TryGetValue(sb.ToString(), out int id)) continue;
                var (_, score, type) = Pieces[id];
                if (type == PieceType.Unused) continue;
                if (len == 1) hasSingle = true;
                Relax(start, start + len, id, type == PieceType.UserDefined ? len * _maxScore - 0.1f : score);
            }
            if (!hasSingle) Relax(start, start + 1, UnkId, unkScore);
        }

        void Relax(int from, int to, int id, float score)
        {
            float total = best[from] + score;
            if (reached[to] && !(total > best[to])) return;
            best[to] = total;
            backPos[to] = from;
            backId[to] = id;
            reached[to] = true;
        }

        var path = new List<(int Start, int End, int Id)>();
        for (int e = n; e > 0; e = backPos[e]) path.Add((backPos[e], e, backId[e]));
        path.Reverse();
        foreach (var (s, e, id) in path)
        {
            string surface = string.Concat(chars.Skip(s).Take(e - s));
            if (id == UnkId && result.Count > 0 && result[^1].Item2 == UnkId) result[^1] = (result[^1].Item1 + surface, UnkId);
            else result.Add((id == UnkId ? surface : Pieces[id].Piece, id));
        }
        return result;
    }

    /// <summary>DecodePieces: pieces joined, ▁ as spaces, the first piece's leading space dropped; controls are empty.</summary>
    public string DecodePieces(IEnumerable<string> pieces)
    {
        var sb = new StringBuilder();
        bool first = true;
        foreach (var p in pieces)
        {
            int? id = PieceToId(p);
            string text;
            if (id is { } i && Pieces[i].Type == PieceType.Control) text = "";
            else if (id == UnkId) text = " \u2047 ";   // the unknown surface, only for the <unk> piece itself
            else if (id is null) text = p;            // a piece outside the vocabulary is returned as written
            else
            {
                text = p;
                if (first && text.StartsWith(SpaceSymbol, StringComparison.Ordinal)) text = text[SpaceSymbol.Length..];
                text = text.Replace(SpaceSymbol, " ");
            }
            if (text.Length > 0) first = false;
            sb.Append(text);
        }
        return sb.ToString();
    }

    /// <summary>A minimal protobuf reader: (field, wire type, varint / fixed value, length-delimited bytes).</summary>
    private static class Proto
    {
        public static IEnumerable<(int Field, int Wire, ulong Value, byte[]? Bytes)> Read(byte[] b)
        {
            int i = 0;
            while (i < b.Length)
            {
                ulong key = Varint(b, ref i);
                int field = (int)(key >> 3), wire = (int)(key & 7);
                switch (wire)
                {
                    case 0: yield return (field, 0, Varint(b, ref i), null); break;
                    case 1: yield return (field, 1, BitConverter.ToUInt64(b, i), null); i += 8; break;
                    case 2:
                        int len = checked((int)Varint(b, ref i));
                        if (len < 0 || i + len > b.Length) throw new ArgumentException("length past the end of the message");
                        yield return (field, 2, 0, b[i..(i + len)]);
                        i += len;
                        break;
                    case 5: yield return (field, 5, BitConverter.ToUInt32(b, i), null); i += 4; break;
                    default: throw new ArgumentException($"unsupported wire type {wire}");
                }
            }
        }

        private static ulong Varint(byte[] b, ref int i)
        {
            ulong r = 0;
            for (int shift = 0; ; shift += 7)
            {
                byte c = b[i++];
                r |= (ulong)(c & 0x7F) << shift;
                if (c < 0x80) return r;
                if (shift > 63) throw new ArgumentException("varint too long");
            }
        }
    }
}
