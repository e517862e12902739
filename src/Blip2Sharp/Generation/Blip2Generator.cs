using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Blip2Sharp.Modeling;
using static TorchSharp.torch;

namespace Blip2Sharp.Generation;

/// <summary>Where generation spent its time (milliseconds; decode steps counted apart from the prefill).</summary>
public sealed class GenerationTimings
{
    public double ImagePrefixMs { get; set; }
    public double PrefillMs { get; set; }
    public double DecodeMs { get; set; }
    public int Steps { get; set; }
}

/// <summary>
/// generate() for BLIP-2: the image prefix is computed once per image and shared by every beam and returned
/// sequence; the prompt is prefilled once (T5: encoder and cross-attention K/V once); then greedy, sampling or beam
/// search over a KV cache. Returns the new tokens of each input (a generated stop token included).
/// </summary>
public sealed class Blip2Generator(Blip2ForConditionalGeneration model)
{
    public Blip2ForConditionalGeneration Model { get; } = model;

    public int[] DefaultEos => Model.Config.TextConfig.EosTokenId ?? [];

    /// <summary>Called at the start of every decoding step with its index (tests watch the live tensors there).</summary>
    internal Action<int>? StepObserver { get; init; }
    public int PadTokenId => Model.Config.TextConfig.PadTokenId ?? 0;

    /// <summary>Generates for each row of inputIds [B, T] (processor layout: &lt;image&gt; × Q, padding, prompt) with pixelValues [B, 3, H, W].</summary>
    public List<List<GeneratedSequence>> Generate(Tensor pixelValues, Tensor inputIds, Tensor? attentionMask, GenerationOptions options,
        bool? useImageTokens = null, Action<int, int>? onToken = null, GenerationTimings? timings = null, CancellationToken cancellationToken = default)
    {
        options.Validate();
        if (pixelValues.shape[0] != inputIds.shape[0])
            throw new ArgumentException($"{pixelValues.shape[0]} images but {inputIds.shape[0]} prompts.");
        using var scope = NewDisposeScope();
        using var noGrad = inference_mode();
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var prefix = Model.ImagePrefix(pixelValues);
        if (timings is not null) timings.ImagePrefixMs = sw.Elapsed.TotalMilliseconds;
        var (embeds, mask) = Model.MergeImagePrefix(prefix, inputIds, attentionMask, useImageTokens);
        sw.Restart();
        using IDecoderState state = Model.Opt is { } opt
            ? new OptDecoderState(opt, embeds, mask, options.MaxNewTokens)
            : new T5DecoderState(Model.T5!, embeds, mask, options.MaxNewTokens);
        int batch = (int)inputIds.shape[0];
        int[] eos = options.EosTokenId ?? DefaultEos;
        var timed = timings is null ? state : new TimedState(state, timings, sw);
        var result = options.NumBeams > 1
            ? BeamSearch(timed, batch, options, eos, cancellationToken)
            : GreedyOrSample(timed, batch, options, eos, onToken, cancellationToken);
        return result;
    }

    /// <summary>Measures the first step (prompt prefill) apart from the per-token steps.</summary>
    private sealed class TimedState(IDecoderState inner, GenerationTimings t, System.Diagnostics.Stopwatch sw) : IDecoderState
    {
        public IReadOnlyList<int> InitialHistory => inner.InitialHistory;
        public void Select(Tensor index) => inner.Select(index);
        public void Dispose() { }

        public Tensor Next(Tensor? tokens)
        {
            sw.Restart();
            var logits = inner.Next(tokens);
            if (tokens is null) t.PrefillMs += sw.Elapsed.TotalMilliseconds;
            else
            {
                t.DecodeMs += sw.Elapsed.TotalMilliseconds;
                t.Steps++;
            }
            return logits;
        }
    }

    /// <summary>
    /// Tokens of one input as they are produced (greedy or sampling), for chat. A consumer that stops reading (breaks
    /// out of the loop, or is cancelled) stops the generation at its next step, and the enumeration ends only once
    /// the generation has: no worker is left running.
    /// </summary>
    public async IAsyncEnumerable<int> Stream(Tensor pixelValues, Tensor inputIds, Tensor? attentionMask, GenerationOptions options,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        if (options.NumBeams > 1 || options.NumReturnSequences > 1) throw new ArgumentException("streaming produces one sequence: use greedy decoding or sampling.");
        var channel = Channel.CreateUnbounded<int>();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var worker = Task.Run(() =>
        {
            try
            {
                Generate(pixelValues, inputIds, attentionMask, options, onToken: (_, token) => channel.Writer.TryWrite(token), cancellationToken: stop.Token);
                channel.Writer.TryComplete();
            }
            catch (Exception e)
            {
                channel.Writer.TryComplete(e);
            }
        }, CancellationToken.None);
        try
        {
            await foreach (var token in channel.Reader.ReadAllAsync(cancellationToken)) yield return token;
        }
        finally
        {
            // Also reached when the consumer leaves early: stop the worker and wait for it to let go of the model.
            stop.Cancel();
            try
            {
                await worker;
            }
            catch (OperationCanceledException)
            {
            }
        }
        cancellationToken.ThrowIfCancellationRequested();
    }

    private List<List<GeneratedSequence>> GreedyOrSample(IDecoderState state, int batch, GenerationOptions o, int[] eos,
        Action<int, int>? onToken, CancellationToken ct)
    {
        var logits = state.Next(null);
        int perInput = o.DoSample ? o.NumReturnSequences : 1;
        int rows = batch * perInput;
        if (perInput > 1)
        {
            var expand = arange(batch, dtype: ScalarType.Int64, device: Model.Device).repeat_interleave(perInput);
            state.Select(expand);
            logits = logits.index_select(0, expand);
        }
        var generator = o.DoSample ? new Generator(o.Seed ?? (ulong)Random.Shared.NextInt64(), Model.Device) : null;
        var history = Enumerable.Range(0, rows).Select(_ => state.InitialHistory.ToList()).ToList();
        var produced = Enumerable.Range(0, rows).Select(_ => new List<int>()).ToList();
        var finished = new bool[rows];
        try
        {
            for (int step = 0; step < o.MaxNewTokens; step++)
            {
                ct.ThrowIfCancellationRequested();
                StepObserver?.Invoke(step);
                using var scope = NewDisposeScope();
                var scores = LogitsProcessors.Apply(logits, history, step, o, eos);
                Tensor next;
                if (generator is not null)
                {
                    var probs = LogitsProcessors.Warp(scores, o).softmax(-1);
                    next = probs.multinomial(1, generator: generator).squeeze(1);
                }
                else next = scores.argmax(-1);
                var ids = next.data<long>().ToArray();
                for (int r = 0; r < rows; r++)
                {
                    int token = finished[r] ? PadTokenId : (int)ids[r];
                    ids[r] = token;
                    history[r].Add(token);
                    if (finished[r]) continue;
                    produced[r].Add(token);
                    onToken?.Invoke(r, token);
                    if (eos.Contains(token)) finished[r] = true;
                }
                if (finished.All(f => f) || step == o.MaxNewTokens - 1) break;
                logits.Dispose();
                logits = state.Next(tensor(ids, device: Model.Device)).DetachFromDisposeScope();
            }
        }
        finally
        {
            logits.Dispose();                              // the last step's, also when cancelled
        }
        return Enumerable.Range(0, batch)
            .Select(b => Enumerable.Range(0, perInput).Select(k => new GeneratedSequence(produced[b * perInput + k], null)).ToList())
            .ToList();
    }

    private List<List<GeneratedSequence>> BeamSearch(IDecoderState state, int batch, GenerationOptions o, int[] eos, CancellationToken ct)
    {
        int beams = o.NumBeams;
        var first = state.Next(null);
        var expand = arange(batch, dtype: ScalarType.Int64, device: Model.Device).repeat_interleave(beams);
        state.Select(expand);
        var logits = first.index_select(0, expand);
        int rows = batch * beams;
        int promptLen = state.InitialHistory.Count;
        var history = Enumerable.Range(0, rows).Select(_ => state.InitialHistory.ToList()).ToList();
        var beamScores = new double[rows];
        for (int r = 0; r < rows; r++) beamScores[r] = r % beams == 0 ? 0 : -1e9;
        var hyps = Enumerable.Range(0, batch).Select(_ => new BeamHypotheses(beams, o.LengthPenalty, o.EarlyStopping, o.MaxNewTokens)).ToList();
        var done = new bool[batch];
        var endedWithEos = new HashSet<List<int>>(ReferenceEqualityComparer.Instance);
        int keep = Math.Max(2, 1 + eos.Length) * beams;

        try
        {
            for (int step = 0; step < o.MaxNewTokens; step++)
            {
                ct.ThrowIfCancellationRequested();
                StepObserver?.Invoke(step);
                using var scope = NewDisposeScope();
                // As BeamSearchScorer.process: cur_len counts the token being chosen now.
                int curLen = promptLen + step + 1;
                var logp = logits.log_softmax(-1);
                var processed = LogitsProcessors.Apply(logp, history, step, o, eos);
                long vocab = processed.shape[1];
                var total = processed + tensor(beamScores, ScalarType.Float32, logits.device).unsqueeze(1); // [B·beams, V]
                var (topScores, topIdx) = total.view(batch, beams * vocab).topk(keep, dim: 1);          // [B, keep]
                var s = topScores.data<float>().ToArray();
                var idx = topIdx.data<long>().ToArray();

                var nextTokens = new long[rows];
                var nextSource = new long[rows];
                var nextScores = new double[rows];
                for (int b = 0; b < batch; b++)
                {
                    if (done[b])
                    {
                        for (int k = 0; k < beams; k++) { nextTokens[b * beams + k] = PadTokenId; nextSource[b * beams + k] = b * beams; nextScores[b * beams + k] = 0; }
                        continue;
                    }
                    int filled = 0;
                    for (int rank = 0; rank < keep && filled < beams; rank++)
                    {
                        double score = s[b * keep + rank];
                        long flat = idx[b * keep + rank];
                        int token = (int)(flat % vocab);
                        int from = b * beams + (int)(flat / vocab);
                        if (eos.Contains(token))
                        {
                            if (rank >= beams) continue;
                            var hyp = history[from].ToList();
                            endedWithEos.Add(hyp);
                            hyps[b].Add(hyp, score, curLen - promptLen);
                        }
                        else
                        {
                            int slot = b * beams + filled++;
                            nextTokens[slot] = token;
                            nextSource[slot] = from;
                            nextScores[slot] = score;
                        }
                    }
                    done[b] = done[b] || hyps[b].IsDone(s[b * keep], curLen, promptLen);
                }
                var source = tensor(nextSource, device: Model.Device);
                history = Enumerable.Range(0, rows).Select(r => history[(int)nextSource[r]].Append((int)nextTokens[r]).ToList()).ToList();
                beamScores = nextScores;
                if (done.All(d => d) || step == o.MaxNewTokens - 1) break;
                state.Select(source);
                logits.Dispose();
                logits = state.Next(tensor(nextTokens, device: Model.Device)).DetachFromDisposeScope();
            }
        }
        finally
        {
            logits.Dispose();                              // the last step's, also when cancelled
        }

        var results = new List<List<GeneratedSequence>>();
        for (int b = 0; b < batch; b++)
        {
            if (!done[b])
            {
                for (int k = 0; k < beams; k++) hyps[b].Add(history[b * beams + k], beamScores[b * beams + k], history[b * beams + k].Count - promptLen);
            }
            results.Add(hyps[b].Best(o.NumReturnSequences).Select(h =>
            {
                var tokens = h.Tokens.Skip(promptLen).ToList();
                // BeamSearchScorer.finalize writes eos_token_id[0] after a finished hypothesis, whichever stop id
                // ended it ("inserting only the first eos_token_id").
                if (endedWithEos.Contains(h.Tokens)) tokens.Add(eos[0]);
                return new GeneratedSequence(tokens, h.Score);
            }).ToList());
        }
        return results;
    }
}
