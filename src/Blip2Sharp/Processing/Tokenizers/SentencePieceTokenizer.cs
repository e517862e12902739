using Blip2Sharp.Configuration;

namespace Blip2Sharp.Processing.Tokenizers;

/// <summary>
/// T5Tokenizer (legacy = True, as the BLIP-2 Flan-T5 checkpoints use it): each chunk between added tokens is
/// encoded by the SentencePiece model on its own; pieces outside the vocabulary become &lt;unk&gt;; &lt;/s&gt; is appended
/// unless the text already ends with it; extra ids sit above the SentencePiece vocabulary.
/// </summary>
public sealed class SentencePieceTokenizer : Tokenizer
{
    private const string SpaceSymbol = "\u2581";
    private readonly SentencePieceModel _sp;
    private bool _addPrefixSpace = true;

    public SentencePieceTokenizer(SentencePieceModel model) => _sp = model;

    public override int VocabSize => _sp.Count;

    public static SentencePieceTokenizer FromFolder(string folder, ConfigWarnings warnings)
    {
        string path = Path.Combine(folder, "spiece.model");
        var t = new SentencePieceTokenizer(SentencePieceModel.Load(File.ReadAllBytes(path), path));
        t.ConfigureSpecialTokens(folder, warnings);
        t._addPrefixSpace = t.Configured.AddPrefixSpace ?? true;
        return t;
    }

    protected override int? BaseTokenToId(string token) => _sp.PieceToId(token) ?? _sp.UnkId;
    protected override string? BaseIdToToken(int id) => id >= 0 && id < _sp.Count ? _sp.Pieces[id].Piece : null;

    protected override IEnumerable<string> TokenizeChunk(string chunk) => _sp.Encode(chunk).Select(p => p.Piece);

    public override List<int> BuildInputsWithSpecialTokens(List<int> ids)
    {
        int? eos = EosTokenId;
        if (eos is null || (ids.Count > 0 && ids[^1] == eos)) return [.. ids]; // the reference does not add a second </s>
        return [.. ids, eos.Value];
    }

    protected override string ConvertTokensToString(IReadOnlyList<string> tokens)
    {
        var list = tokens.ToList();
        if (list.Count > 0 && list[0].StartsWith(SpaceSymbol, StringComparison.Ordinal) && _addPrefixSpace) list[0] = list[0][1..];
        var current = new List<string>();
        var output = new System.Text.StringBuilder();
        bool prevIsSpecial = false;
        foreach (var token in list)
        {
            // Special tokens are not decoded by SentencePiece.
            if (SpecialTokens.Contains(token))
            {
                if (!prevIsSpecial) output.Append(' ');
                output.Append(_sp.DecodePieces(current)).Append(token);
                prevIsSpecial = true;
                current.Clear();
            }
            else
            {
                current.Add(token);
                prevIsSpecial = false;
            }
        }
        output.Append(_sp.DecodePieces(current));
        return output.ToString().Trim();
    }
}
