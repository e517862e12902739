namespace Blip2Sharp.Generation;

/// <summary>The finished hypotheses of one input in beam search (transformers' BeamHypotheses).</summary>
internal sealed class BeamHypotheses(int numBeams, double lengthPenalty, bool earlyStopping)
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

    /// <summary>Whether no running beam can beat the worst kept hypothesis any more.</summary>
    public bool IsDone(double bestSumLogprobs, int curLen, int promptLen)
    {
        if (_beams.Count < numBeams) return false;
        if (earlyStopping) return true;
        double best = bestSumLogprobs / Math.Pow(curLen - promptLen, lengthPenalty);
        return _worst >= best;
    }

    /// <summary>The best hypotheses, best first (ties: the later added first, as the reference's sort-then-pop).</summary>
    public List<(double Score, List<int> Tokens)> Best(int count)
    {
        var ascending = _beams.Select((b, i) => (b, i)).OrderBy(x => x.b.Score).ThenBy(x => x.i).Select(x => x.b).ToList();
        ascending.Reverse();
        return ascending.Take(count).ToList();
    }
}
