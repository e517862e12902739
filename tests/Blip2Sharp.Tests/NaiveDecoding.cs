using Blip2Sharp.Generation;
using Blip2Sharp.Modeling;
using static TorchSharp.torch;

namespace Blip2Sharp.Tests;

/// <summary>
/// An independent reference for generation: transformers 4.45's greedy search and beam search (BeamSearchScorer,
/// BeamHypotheses, NoRepeatNGram and MinNewTokens processors) written out plainly, one input at a time, with every
/// step's logits recomputed from the whole sequence by the model's forward (checked against the goldens elsewhere):
/// no KV cache, no decode kernels, no code shared with Blip2Generator.
/// </summary>
internal static class NaiveDecoding
{
    /// <summary>The prompt of one input (processor layout, no padding) with its image prefix merged in.</summary>
    public static (Tensor Embeds, Tensor Mask) Prompt(Blip2ForConditionalGeneration model, Tensor pixelValues, long[] ids)
    {
        using var noGrad = no_grad();
        var prefix = model.ImagePrefix(pixelValues);
        return model.MergeImagePrefix(prefix, tensor(ids).unsqueeze(0), null);
    }

    /// <summary>log_softmax of the next token's logits after the new tokens so far, in float32 as the reference.</summary>
    private static float[] NextLogProbs(Blip2ForConditionalGeneration model, Tensor embeds, Tensor mask, List<int> tokens)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        Tensor logits;
        if (model.Opt is { } opt)
        {
            var e = tokens.Count == 0 ? embeds
                : cat([embeds, opt.EmbedTokens(tensor(tokens.Select(t => (long)t).ToArray()).unsqueeze(0))], 1);
            var m = cat([mask, ones(1, tokens.Count, dtype: ScalarType.Int64)], 1);
            logits = opt.Forward(e, m).Logits[0, -1];
        }
        else
        {
            long start = model.T5!.Config.DecoderStartTokenId!.Value;
            var dec = tensor(tokens.Select(t => (long)t).Prepend(start).ToArray()).unsqueeze(0);
            logits = model.T5.Forward(embeds, mask, dec).Logits[0, -1];
        }
        return logits.log_softmax(-1).data<float>().ToArray();
    }

    /// <summary>NoRepeatNGramLogitsProcessor and MinNewTokensLengthLogitsProcessor on one row's scores.</summary>
    private static void Process(float[] scores, List<int> seen, int newTokens, GenerationOptions o, int[] eos)
    {
        int n = o.NoRepeatNgramSize;
        if (n > 0 && seen.Count + 1 >= n)
        {
            var last = seen.Skip(seen.Count - (n - 1)).ToList();
            for (int i = 0; i + n <= seen.Count; i++)
                if (seen.Skip(i).Take(n - 1).SequenceEqual(last)) scores[seen[i + n - 1]] = float.NegativeInfinity;
        }
        if (newTokens < o.MinNewTokens)
            foreach (int e in eos) scores[e] = float.NegativeInfinity;
    }

    /// <summary>Greedy search: the new tokens, the stop token included.</summary>
    public static List<int> Greedy(Blip2ForConditionalGeneration model, Tensor embeds, Tensor mask, GenerationOptions o,
        int[] eos, IReadOnlyList<int> initialHistory)
    {
        var tokens = new List<int>();
        while (tokens.Count < o.MaxNewTokens)
        {
            var scores = NextLogProbs(model, embeds, mask, tokens);
            Process(scores, [.. initialHistory, .. tokens], tokens.Count, o, eos);
            int best = 0;
            for (int v = 1; v < scores.Length; v++) if (scores[v] > scores[best]) best = v;
            tokens.Add(best);
            if (eos.Contains(best)) break;
        }
        return tokens;
    }

    /// <summary>Beam search of one input: the best num_return_sequences, each as generate() returns its new tokens.</summary>
    public static List<List<int>> Beam(Blip2ForConditionalGeneration model, Tensor embeds, Tensor mask, GenerationOptions o,
        int[] eos, IReadOnlyList<int> initialHistory)
    {
        int beams = o.NumBeams, promptLen = initialHistory.Count;
        var rows = Enumerable.Range(0, beams).Select(_ => new List<int>()).ToList();   // new tokens of each running beam
        var beamScores = Enumerable.Range(0, beams).Select(k => k == 0 ? 0f : -1e9f).ToArray();
        var finished = new List<(double Score, List<int> Tokens, bool Eos)>();     // in the order they were added
        double worst = 1e9;
        bool done = false;
        void Add(List<int> tokens, double sum, int generatedLength, bool eosEnded)
        {
            double score = sum / Math.Pow(generatedLength, o.LengthPenalty);
            if (finished.Count < beams || score > worst)
            {
                finished.Add((score, tokens, eosEnded));
                if (finished.Count > beams)
                {
                    var order = finished.Select((f, i) => (f.Score, i)).OrderBy(x => x.Score).ThenBy(x => x.i).ToList();
                    finished.RemoveAt(order[0].i);
                    worst = order[1].Score;
                }
                else worst = Math.Min(score, worst);
            }
        }
        int keep = Math.Max(2, 1 + eos.Length) * beams;
        for (int step = 0; step < o.MaxNewTokens && !done; step++)
        {
            int curLen = promptLen + step + 1;                    // input_ids.shape[-1] + 1, as process() counts
            var candidates = new List<(float Score, int Beam, int Token)>();
            for (int k = 0; k < beams; k++)
            {
                var scores = NextLogProbs(model, embeds, mask, rows[k]);
                Process(scores, [.. initialHistory, .. rows[k]], rows[k].Count, o, eos);
                for (int v = 0; v < scores.Length; v++) candidates.Add((scores[v] + beamScores[k], k, v));
            }
            // torch.topk over the flattened [beams × vocab]: ties keep the lower flat index first.
            var top = candidates.Select((c, i) => (c, i)).OrderByDescending(x => x.c.Score).ThenBy(x => x.i)
                .Take(keep).Select(x => x.c).ToList();
            var next = new List<(float Score, int Beam, int Token)>();
            for (int rank = 0; rank < top.Count && next.Count < beams; rank++)
            {
                var c = top[rank];
                if (eos.Contains(c.Token))
                {
                    if (rank < beams) Add([.. rows[c.Beam]], c.Score, curLen - promptLen, eosEnded: true);
                }
                else next.Add(c);
            }
            double best = top[0].Score;
            if (finished.Count >= beams)
            {
                if (o.EarlyStopping == EarlyStopping.WhenFull) done = true;
                else
                {
                    int length = o.EarlyStopping == EarlyStopping.Never && o.LengthPenalty > 0 ? o.MaxNewTokens : curLen - promptLen;
                    done = worst >= best / Math.Pow(length, o.LengthPenalty);
                }
            }
            rows = [.. next.Select(c => rows[c.Beam].Append(c.Token).ToList())];
            beamScores = [.. next.Select(c => c.Score)];
        }
        if (!done)
            for (int k = 0; k < beams; k++) Add(rows[k], beamScores[k], rows[k].Count, eosEnded: false);
        // finalize: sorted ascending by score (stable), popped from the end; eos_token_id[0] written after an ended one.
        var sorted = finished.Select((f, i) => (f, i)).OrderBy(x => x.f.Score).ThenBy(x => x.i).Select(x => x.f).ToList();
        sorted.Reverse();
        return [.. sorted.Take(o.NumReturnSequences).Select(f => f.Eos ? [.. f.Tokens, eos[0]] : f.Tokens)];
    }
}
