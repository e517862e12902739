namespace Blip2Sharp.Tasks;

/// <summary>
/// Generated tokens to text as they arrive, for streaming: the pieces returned by <see cref="Push"/> and then
/// <see cref="Finish"/> concatenate to exactly <see cref="Text"/>, which is what the non-streamed answer says
/// (<see cref="Blip2Pipeline.Decode"/>: special tokens skipped, surrounding whitespace stripped), cut before the first
/// stop string if one appears. Held back until it is certain: trailing whitespace, a partial UTF-8 character (it
/// decodes to U+FFFD until its last byte arrives) and an ending that could begin a stop string.
/// </summary>
public sealed class TextStream(Blip2Pipeline pipeline, IReadOnlyList<string>? stops = null)
{
    private readonly List<int> _tokens = [];
    private readonly string[] _stops = [.. (stops ?? []).Where(s => s.Length > 0)];
    private string _sent = "";
    private string? _stopped;

    /// <summary>Whether a stop string appeared: the answer ends before it, and later tokens are ignored.</summary>
    public bool Stopped => _stopped is not null;

    /// <summary>Tokens taken into the answer (the ones after a stop string are not).</summary>
    public int TokenCount => _tokens.Count;

    /// <summary>The whole answer so far (or final, after a stop string).</summary>
    public string Text => _stopped ?? Cut(pipeline.Decode(_tokens));

    /// <summary>Takes the next token; returns the text that is now certain ("" if none).</summary>
    public string Push(int token)
    {
        if (Stopped) return "";
        _tokens.Add(token);
        string text = pipeline.Decode(_tokens);
        if (FirstStop(text) is int at)
        {
            _stopped = text[..at].TrimEnd();
            return "";
        }
        string certain = text.TrimEnd('\uFFFD').TrimEnd();
        certain = certain[..(certain.Length - StopPrefixAtEnd(certain))];
        if (certain.Length <= _sent.Length || !certain.StartsWith(_sent, StringComparison.Ordinal)) return "";
        string piece = certain[_sent.Length..];
        _sent = certain;
        return piece;
    }

    /// <summary>The rest of the answer once generation has ended.</summary>
    public string Finish()
    {
        string final = Text;
        if (!final.StartsWith(_sent, StringComparison.Ordinal)) return "";
        string rest = final[_sent.Length..];
        _sent = final;
        return rest;
    }

    private string Cut(string text) => FirstStop(text) is int at ? text[..at].TrimEnd() : text;

    private int? FirstStop(string text)
    {
        int? first = null;
        foreach (var s in _stops)
        {
            int i = text.IndexOf(s, StringComparison.Ordinal);
            if (i >= 0 && (first is null || i < first)) first = i;
        }
        return first;
    }

    /// <summary>The length of the longest ending of text that begins some stop string.</summary>
    private int StopPrefixAtEnd(string text)
    {
        int hold = 0;
        foreach (var s in _stops)
            for (int k = Math.Min(s.Length - 1, text.Length); k > hold; k--)
                if (text.EndsWith(s[..k], StringComparison.Ordinal))
                {
                    hold = k;
                    break;
                }
        return hold;
    }
}
