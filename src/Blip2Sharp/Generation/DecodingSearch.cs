using static TorchSharp.torch;

namespace Blip2Sharp.Generation;

/// <summary>
/// One step's decision for one input: the token fed to each of its rows next, and (beam search) which of its rows each
/// new row continues (local indices), to be applied to the decoder state before the tokens are fed.
/// </summary>
internal readonly record struct SearchStep(long[] Tokens, long[]? Source, bool Done);

/// <summary>
/// The decoding strategy of one input (greedy, sampling or beam search), one step at a time over its own rows of
/// logits: the same decisions whether the input decodes alone, in a padded batch (<see cref="Blip2Generator"/>) or
/// among other requests (<see cref="ContinuousBatcher"/>). Each sampling search has its own random generator, so a
/// seeded sample does not depend on what else is decoded with it.
/// </summary>
internal abstract class DecodingSearch : IDisposable
{
    protected GenerationOptions Options { get; }
    protected int[] Eos { get; }
    protected int Pad { get; }
    protected Device Device { get; }
    /// <summary>Steps taken so far (the number of new tokens of every running row).</summary>
    public int StepsTaken { get; protected set; }

    protected DecodingSearch(GenerationOptions o, int[] eos, int pad, Device device)
    {
        Options = o;
        Eos = eos;
        Pad = pad;
        Device = device;
    }

    /// <summary>Rows of this input from the second step on (the prefill's one row is expanded to them).</summary>
    public abstract int Rows { get; }

    /// <summary>Whether the last step ended this input (every row finished, or max_new_tokens reached).</summary>
    public bool Done { get; protected set; }

    /// <summary>Decides the next tokens from logits [Rows, V]; onToken(row, token) sees each new token of a running
    /// row.</summary>
    public abstract SearchStep Next(Tensor logits, Action<int, int>? onToken);

    /// <summary>The returned sequences (best first for beam search).</summary>
    public abstract List<GeneratedSequence> Results();

    public virtual void Dispose() { }

    public static DecodingSearch Create(GenerationOptions o, int[] eos, int pad, IReadOnlyList<int> initialHistory,
        Device device) =>
        o.NumBeams > 1 ? new BeamSearch(o, eos, pad, initialHistory, device)
            : new GreedyOrSampleSearch(o, eos, pad, initialHistory, device);
}

/// <summary>Greedy decoding, or multinomial sampling after the warpers (num_return_sequences rows).</summary>
internal sealed class GreedyOrSampleSearch : DecodingSearch
{
    private readonly List<List<int>> _history;
    private readonly List<List<int>> _produced;
    private readonly bool[] _finished;
    private readonly Generator? _generator;

    public GreedyOrSampleSearch(GenerationOptions o, int[] eos, int pad, IReadOnlyList<int> initialHistory,
        Device device)
        : base(o, eos, pad, device)
    {
        Rows = o.DoSample ? o.NumReturnSequences : 1;
        _history = [.. Enumerable.Range(0, Rows).Select(_ => initialHistory.ToList())];
        _produced = [.. Enumerable.Range(0, Rows).Select(_ => new List<int>())];
        _finished = new bool[Rows];
        _generator = o.DoSample ? new Generator(o.Seed ?? (ulong)Random.Shared.NextInt64(), device) : null;
    }

    public override int Rows { get; }

    public override SearchStep Next(Tensor logits, Action<int, int>? onToken)
    {
        using var scope = NewDisposeScope();
        var scores = LogitsProcessors.Apply(logits, _history, StepsTaken, Options, Eos);
        var next = _generator is not null
            ? LogitsProcessors.Warp(scores, Options).softmax(-1).multinomial(1, generator: _generator).squeeze(1)
            : scores.argmax(-1);
        var ids = next.data<long>().ToArray();
        for (int r = 0; r < Rows; r++)
        {
            int token = _finished[r] ? Pad : (int)ids[r];
            ids[r] = token;
            _history[r].Add(token);
            if (_finished[r]) continue;
            _produced[r].Add(token);
            onToken?.Invoke(r, token);
            if (Eos.Contains(token)) _finished[r] = true;
        }
        StepsTaken++;
        Done = _finished.All(f => f) || StepsTaken == Options.MaxNewTokens;
        return new SearchStep(ids, null, Done);
    }

    public override List<GeneratedSequence> Results() => [.. _produced.Select(p => new GeneratedSequence(p, null))];

    public override void Dispose() => _generator?.Dispose();
}

/// <summary>transformers 4.45's beam search for one input (BeamSearchScorer with its BeamHypotheses).</summary>
internal sealed class BeamSearch : DecodingSearch
{
    private readonly int _promptLength;
    private List<List<int>> _history;
    private double[] _beamScores;
    private readonly BeamHypotheses _hyps;
    private readonly HashSet<List<int>> _endedWithEos = new(ReferenceEqualityComparer.Instance);
    private readonly int _keep;
    private bool _satisfied;

    public BeamSearch(GenerationOptions o, int[] eos, int pad, IReadOnlyList<int> initialHistory, Device device)
        : base(o, eos, pad, device)
    {
        Rows = o.NumBeams;
        _promptLength = initialHistory.Count;
        _history = [.. Enumerable.Range(0, Rows).Select(_ => initialHistory.ToList())];
        // Only the first beam is live at first: the others start at -1e9 so the first step draws from one row.
        _beamScores = [.. Enumerable.Range(0, Rows).Select(r => r == 0 ? 0.0 : -1e9)];
        _hyps = new BeamHypotheses(Rows, o.LengthPenalty, o.EarlyStopping, o.MaxNewTokens);
        _keep = Math.Max(2, 1 + eos.Length) * Rows;
    }

    public override int Rows { get; }

    public override SearchStep Next(Tensor logits, Action<int, int>? onToken)
    {
        int beams = Rows;
        var nextTokens = new long[beams];
        var nextSource = new long[beams];
        var nextScores = new double[beams];
        StepsTaken++;
        if (_satisfied)
        {
            // Finished while other inputs of a padded batch go on: pad tokens, every row follows the first.
            Array.Fill(nextTokens, Pad);
            return new SearchStep(nextTokens, nextSource, Done);
        }
        using var scope = NewDisposeScope();
        // As BeamSearchScorer.process: cur_len counts the token being chosen now.
        int curLen = _promptLength + StepsTaken;
        var logp = logits.log_softmax(-1);
        var processed = LogitsProcessors.Apply(logp, _history, StepsTaken - 1, Options, Eos);
        long vocab = processed.shape[1];
        var total = processed + tensor(_beamScores, ScalarType.Float32, logits.device).unsqueeze(1); // [beams, V]
        var (topScores, topIdx) = total.view(1, beams * vocab).topk(_keep, dim: 1);                  // [1, keep]
        var s = topScores.data<float>().ToArray();
        var idx = topIdx.data<long>().ToArray();
        int filled = 0;
        for (int rank = 0; rank < _keep && filled < beams; rank++)
        {
            double score = s[rank];
            int token = (int)(idx[rank] % vocab);
            int from = (int)(idx[rank] / vocab);
            if (Eos.Contains(token))
            {
                if (rank >= beams) continue;
                var hyp = _history[from].ToList();
                _endedWithEos.Add(hyp);
                _hyps.Add(hyp, score, curLen - _promptLength);
            }
            else
            {
                nextTokens[filled] = token;
                nextSource[filled] = from;
                nextScores[filled++] = score;
            }
        }
        _satisfied = _hyps.IsDone(s[0], curLen, _promptLength);
        _history = [.. Enumerable.Range(0, beams)
            .Select(r => _history[(int)nextSource[r]].Append((int)nextTokens[r]).ToList())];
        _beamScores = nextScores;
        Done = _satisfied || StepsTaken == Options.MaxNewTokens;
        return new SearchStep(nextTokens, nextSource, Done);
    }

    private List<GeneratedSequence>? _results;

    public override List<GeneratedSequence> Results() => _results ??= Finalize();

    private List<GeneratedSequence> Finalize()
    {
        if (!_satisfied)
            for (int k = 0; k < Rows; k++) _hyps.Add(_history[k], _beamScores[k], _history[k].Count - _promptLength);
        return [.. _hyps.Best(Options.NumReturnSequences).Select(h =>
        {
            var tokens = h.Tokens.Skip(_promptLength).ToList();
            // BeamSearchScorer.finalize writes eos_token_id[0] after a finished hypothesis, whichever stop id
            // ended it ("inserting only the first eos_token_id").
            if (_endedWithEos.Contains(h.Tokens)) tokens.Add(Eos[0]);
            return new GeneratedSequence(tokens, h.Score);
        })];
    }
}
