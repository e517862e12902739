using static TorchSharp.torch;

namespace Blip2Sharp.Generation;

/// <summary>transformers' logits processors and warpers, in the order generate() applies them.</summary>
public static class LogitsProcessors
{
    /// <summary>
    /// Processors on scores [N, V] given each row's history (the ids the reference's generate sees: new tokens for
    /// decoder-only BLIP-2, the decoder ids from the start token for T5) and how many of them are new.
    /// </summary>
    public static Tensor Apply(Tensor scores, IReadOnlyList<List<int>> history, int newTokens, GenerationOptions o, int[] eos)
    {
        var input = scores;
        using var scope = NewDisposeScope();
        if (o.RepetitionPenalty != 1.0) scores = RepetitionPenalty(scores, history, o.RepetitionPenalty);
        if (o.NoRepeatNgramSize > 0) scores = NoRepeatNgram(scores, history, o.NoRepeatNgramSize);
        if (newTokens < o.MinNewTokens && eos.Length > 0)
        {
            scores = scores.clone();
            foreach (int e in eos) if (e < scores.shape[1]) scores[.., e] = float.NegativeInfinity;
        }
        return Result(input, scores);
    }

    /// <summary>Sampling warpers: temperature, then top-k, then top-p (nucleus), each keeping at least one token.</summary>
    public static Tensor Warp(Tensor scores, GenerationOptions o)
    {
        var input = scores;
        using var scope = NewDisposeScope();
        if (o.Temperature != 1.0) scores = scores / o.Temperature;
        if (o.TopK > 0 && o.TopK < scores.shape[1])
        {
            var kth = scores.topk(o.TopK, dim: 1).values[.., ^1..];    // [N, 1]
            scores = scores.masked_fill(scores.lt(kth), float.NegativeInfinity);
        }
        if (o.TopP < 1.0)
        {
            var (sorted, indices) = scores.sort(dim: 1, descending: false);
            var cumulative = sorted.softmax(1).cumsum(1);
            var remove = cumulative.le(1 - o.TopP);
            remove[.., ^1] = false;                                      // keep at least the most likely token
            var removeOriginal = remove.scatter(1, indices, remove);
            scores = scores.masked_fill(removeOriginal, float.NegativeInfinity);
        }
        return Result(input, scores);
    }

    /// <summary>
    /// A new tensor made in this call's scope goes to the caller's; the caller's own tensor, returned unchanged, stays
    /// where it is (moving it "out" would lift it into the scope around the caller's: a beam search kept every step's
    /// scores alive until its end that way).
    /// </summary>
    private static Tensor Result(Tensor input, Tensor output) =>
        ReferenceEquals(input, output) ? output : output.MoveToOuterDisposeScope();

    /// <summary>Scores of tokens already in a row's history: divided by the penalty if positive, multiplied if negative.</summary>
    public static Tensor RepetitionPenalty(Tensor scores, IReadOnlyList<List<int>> history, double penalty)
    {
        using var scope = NewDisposeScope();
        scores = scores.clone();
        for (int r = 0; r < history.Count; r++)
        {
            if (history[r].Count == 0) continue;
            var idx = tensor(history[r].Distinct().Select(x => (long)x).ToArray(), device: scores.device);
            var row = scores[r];
            var s = row.index_select(0, idx);
            row.index_copy_(0, idx, where(s.lt(0), s * penalty, s / penalty));
        }
        return scores.MoveToOuterDisposeScope();
    }

    /// <summary>Bans every token that would repeat an n-gram already in the row's history.</summary>
    public static Tensor NoRepeatNgram(Tensor scores, IReadOnlyList<List<int>> history, int n)
    {
        scores = scores.clone();
        for (int r = 0; r < history.Count; r++)
        {
            var h = history[r];
            if (h.Count + 1 < n) continue;
            var prefix = h.Skip(h.Count - (n - 1)).ToList();
            for (int i = 0; i + n <= h.Count; i++)
            {
                bool same = true;
                for (int j = 0; j < n - 1 && same; j++) same = h[i + j] == prefix[j];
                if (same) scores[r, h[i + n - 1]] = float.NegativeInfinity;
            }
        }
        return scores;
    }
}
