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
        int[] eos = options.EosTokenId ?? DefaultEos;
        var timed = timings is null ? state : new TimedState(state, timings, sw);
        var searches = Enumerable.Range(0, (int)inputIds.shape[0])
            .Select(_ => DecodingSearch.Create(options, eos, PadTokenId, state.InitialHistory, Model.Device)).ToList();
        try
        {
            Decode(timed, searches, onToken, cancellationToken);
            return [.. searches.Select(s => s.Results())];
        }
        finally
        {
            foreach (var s in searches) s.Dispose();
        }
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

    /// <summary>
    /// Runs every input's search over one decoder state, input b owning rows [b·k, (b + 1)·k): the prompt is prefilled
    /// once, its row expanded to k, then each step's logits go to the searches and their tokens (and, for beams, row
    /// order) back to the state, until all are done. A search that finishes before the others pads its rows.
    /// </summary>
    private void Decode(IDecoderState state, List<DecodingSearch> searches, Action<int, int>? onToken, CancellationToken ct)
    {
        int batch = searches.Count, k = searches[0].Rows;
        var logits = state.Next(null);
        if (k > 1)
        {
            using var expand = arange(batch, dtype: ScalarType.Int64, device: Model.Device).repeat_interleave(k);
            state.Select(expand);
            var expanded = logits.index_select(0, expand);
            logits.Dispose();
            logits = expanded;
        }
        try
        {
            for (int step = 0; ; step++)
            {
                ct.ThrowIfCancellationRequested();
                StepObserver?.Invoke(step);
                using var scope = NewDisposeScope();
                var tokens = new long[batch * k];
                long[]? source = null;
                bool allDone = true;
                for (int b = 0; b < batch; b++)
                {
                    int offset = b * k;
                    var decision = searches[b].Next(logits.narrow(0, offset, k), onToken is null ? null : (r, t) => onToken(offset + r, t));
                    decision.Tokens.CopyTo(tokens, offset);
                    if (decision.Source is { } from)
                    {
                        source ??= [.. Enumerable.Range(0, batch * k).Select(r => (long)r)];
                        for (int r = 0; r < k; r++) source[offset + r] = offset + from[r];
                    }
                    allDone &= decision.Done;
                }
                if (allDone) break;
                if (source is not null) state.Select(tensor(source, device: Model.Device));
                logits.Dispose();
                logits = state.Next(tensor(tokens, device: Model.Device)).DetachFromDisposeScope();
            }
        }
        finally
        {
            logits.Dispose();                              // the last step's, also when cancelled
        }
    }
}
