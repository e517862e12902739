namespace Blip2Sharp.Generation;

/// <summary>The finished hypotheses of one input in beam search (transformers' BeamHypotheses).</summary>
internal sealed class BeamHypotheses(int numBeams, double lengthPenalty, EarlyStopping earlyStopping, int maxNewTokens)
{
    private readonly List<(double Score, List<int> Tokens)> _beams = [];
    private double _worst = 1e9;

    public int Count => _beams.Count;

    /// <summary>Adds a hypothesis whose log-probability sum is normalised by generatedLength ^ length_penalty.</summary>
    public void Add(List<int> tokens, double sumLogprobs, int generatedLength)
    {
        double score = sumLogprobs / Math.Pow(generatedLength, lengthPenalty);
        if (_beams.Count < numBeams || score > _worst)
        {
            _beams.Add((score, tokens));
            if (_beams.Count > numBeams)
            {
                var sorted = _beams.Select((b, i) => (b.Score, i)).OrderBy(x => x.Score).ThenBy(x => x.i).ToList();
                _beams.RemoveAt(sorted[0].i);
                _worst = sorted[1].Score;
            }
            else _worst = Math.Min(score, _worst);
        }
    }

    /// <summary>
    /// Whether no running beam can beat the worst kept hypothesis any more (beam_search.py, BeamHypotheses.is_done:
    /// "never" with a positive length penalty divides by the longest reachable length, max_length − prompt length,
    /// which is max_new_tokens for both decoder-only and encoder-decoder models).
    /// </summary>
    public bool IsDone(double bestSumLogprobs, int curLen, int promptLen)
    {
        if (_beams.Count < numBeams) return false;
        if (earlyStopping == EarlyStopping.WhenFull) return true;
        int length = earlyStopping == EarlyStopping.Never && lengthPenalty > 0 ? maxNewTokens : curLen - promptLen;
        return _worst >= bestSumLogprobs / Math.Pow(length, lengthPenalty);
    }

    /// <summary>The best hypotheses, best first (ties: the later added first, as the reference's sort-then-pop).</summary>
    public List<(double Score, List<int> Tokens)> Best(int count)
    {
        var ascending = _beams.Select((b, i) => (b, i)).OrderBy(x => x.b.Score).ThenBy(x => x.i).Select(x => x.b).ToList();
        ascending.Reverse();
        return ascending.Take(count).ToList();
    }
}
