using System.Diagnostics;
using System.Threading.Channels;
using Blip2Sharp.Modeling;
using static TorchSharp.torch;

namespace Blip2Sharp.Generation;

/// <summary>The queue of a <see cref="ContinuousBatcher"/> is full: try again later.</summary>
public sealed class QueueFullException(int capacity)
    : Exception($"the generation queue is full ({capacity} waiting requests).")
{
    public int Capacity { get; } = capacity;
}

/// <summary>One token of a running request: which of its returned sequences, and the id.</summary>
public readonly record struct StreamedToken(int Sequence, int Token);

/// <summary>A request submitted to a <see cref="ContinuousBatcher"/>: its tokens as they come, then its
/// result.</summary>
public sealed class GenerationJob
{
    private readonly Channel<StreamedToken> _tokens = Channel.CreateUnbounded<StreamedToken>();
    private readonly TaskCompletionSource<List<GeneratedSequence>> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly long _submitted = Stopwatch.GetTimestamp();

    internal GenerationJob(Tensor pixelValues, Tensor inputIds, Tensor attentionMask, GenerationOptions options,
        CancellationToken ct)
    {
        PixelValues = pixelValues;
        InputIds = inputIds;
        AttentionMask = attentionMask;
        Options = options;
        Cancellation = ct;
    }

    internal Tensor PixelValues { get; }
    internal Tensor InputIds { get; }
    internal Tensor AttentionMask { get; }
    internal CancellationToken Cancellation { get; }
    internal IDecoderState? State { get; set; }
    internal DecodingSearch? Search { get; set; }
    internal long[]? NextTokens { get; set; }

    public GenerationOptions Options { get; }

    /// <summary>New tokens of greedy or sampled sequences as each step produces them (beam search streams
    /// nothing).</summary>
    public ChannelReader<StreamedToken> Tokens => _tokens.Reader;

    /// <summary>The returned sequences when the request ends; cancelled when its token is, faulted on an
    /// error.</summary>
    public Task<List<GeneratedSequence>> Completion => _done.Task;

    /// <summary>From submission to the first new token (to the result for beam search), once known.</summary>
    public TimeSpan? TimeToFirstToken { get; private set; }

    internal void Emit(int sequence, int token)
    {
        TimeToFirstToken ??= Stopwatch.GetElapsedTime(_submitted);
        _tokens.Writer.TryWrite(new StreamedToken(sequence, token));
    }

    internal void Finish(List<GeneratedSequence>? result, Exception? error = null)
    {
        TimeToFirstToken ??= Stopwatch.GetElapsedTime(_submitted);
        DisposeState();
        _tokens.Writer.TryComplete(error);
        if (error is OperationCanceledException) _done.TrySetCanceled(Cancellation);
        else if (error is not null) _done.TrySetException(error);
        else _done.TrySetResult(result!);
    }

    private void DisposeState()
    {
        State?.Dispose();
        Search?.Dispose();
        State = null;
        Search = null;
        PixelValues.Dispose();
        InputIds.Dispose();
        AttentionMask.Dispose();
    }
}

/// <summary>What one iteration of the batcher did (for metrics).</summary>
public readonly record struct BatchStep(int Admitted, int DecodedRows, int Retired, TimeSpan Elapsed);

/// <summary>
/// Continuous batching: requests wait in a bounded queue; between two decoding steps the waiting ones are admitted
/// together (their image prefixes, vision tower and Q-Former, see <see cref="BatchImagePrefix"/>; each prompt
/// prefilled on its own cache);
/// then one step decodes every active sequence together (OPT: each weight read once for all rows, attention per
/// sequence over its own KV cache; Flan-T5: each sequence steps in turn) and finished or cancelled requests leave.
/// A request's tokens never depend on what else is decoded with it: its rows compute what they would alone, and its
/// search (greedy, beam, or sampling with its own seeded generator) sees only its own logits.
/// </summary>
public sealed class ContinuousBatcher : IDisposable
{
    private readonly Blip2Generator _generator;
    private readonly Queue<GenerationJob> _queue = new();
    private readonly List<GenerationJob> _active = [];
    private readonly Lock _gate = new();
    private readonly SemaphoreSlim _wake = new(0);
    private readonly Thread _loop;
    private volatile bool _stopping;

    /// <param name="model">The model every request is decoded with (the batcher owns its decoding thread, not the model).</param>
    /// <param name="maxBatchRows">Most sequences (beams and returned sequences count one each) decoded in one
    /// step.</param>
    /// <param name="maxQueue">Most requests waiting for admission; <see cref="Submit"/> refuses more.</param>
    public ContinuousBatcher(Blip2ForConditionalGeneration model, int maxBatchRows = 16, int maxQueue = 64)
    {
        if (maxBatchRows < 1) throw new ArgumentException($"max batch must be at least 1 (got {maxBatchRows}).");
        if (maxQueue < 0) throw new ArgumentException($"max queue cannot be negative (got {maxQueue}).");
        _generator = new Blip2Generator(model);
        MaxBatchRows = maxBatchRows;
        MaxQueue = maxQueue;
        _loop = new Thread(Loop) { IsBackground = true, Name = "blip2-batcher" };
        _loop.Start();
    }

    /// <summary>
    /// True runs the vision tower and Q-Former of the requests admitted together as one batch; false (the default) runs
    /// them image by image. libtorch's matrix products round differently for different row counts, so only image by
    /// image is every request's output bit for bit its one-at-a-time output (a batched prefix can move a beam score in
    /// its last digits); on a CPU the vision tower is compute-bound either way, so batching it saves little.
    /// </summary>
    public bool BatchImagePrefix { get; init; }

    public int MaxBatchRows { get; }
    public int MaxQueue { get; }
    public Blip2ForConditionalGeneration Model => _generator.Model;

    public int QueueDepth
    {
        get { lock (_gate) return _queue.Count; }
    }

    /// <summary>Sequences decoded in the latest step.</summary>
    public int ActiveRows { get; private set; }

    /// <summary>Raised on the batcher's thread after every iteration that did work.</summary>
    public event Action<BatchStep>? Stepped;

    /// <summary>
    /// Queues one image (pixelValues [1, 3, H, W]) with its prompt (inputIds, attentionMask [1, T] in the processor's
    /// layout); the tensors are copied. Throws <see cref="QueueFullException"/> when the queue is full.
    /// </summary>
    public GenerationJob Submit(Tensor pixelValues, Tensor inputIds, Tensor? attentionMask, GenerationOptions options,
        CancellationToken cancellationToken = default)
    {
        options.Validate();
        if (pixelValues.shape[0] != 1 || inputIds.shape[0] != 1)
            throw new ArgumentException("a request is one image with one prompt; submit several requests for more.");
        ObjectDisposedException.ThrowIf(_stopping, this);
        int rows = RowsOf(options);
        if (rows > MaxBatchRows)
            throw new ArgumentException($"the request decodes {rows} sequences (beams × returned sequences) but a step holds at most {MaxBatchRows}.");
        using var scope = NewDisposeScope();
        var job = new GenerationJob(pixelValues.detach().clone().DetachFromDisposeScope(),
            inputIds.to(ScalarType.Int64).clone().DetachFromDisposeScope(),
            (attentionMask ?? ones_like(inputIds)).to(ScalarType.Int64).clone().DetachFromDisposeScope(), options,
                cancellationToken);
        lock (_gate)
        {
            if (_queue.Count >= MaxQueue)
            {
                job.Finish(null, new QueueFullException(MaxQueue));
                throw new QueueFullException(MaxQueue);
            }
            _queue.Enqueue(job);
        }
        _wake.Release();
        cancellationToken.Register(Wake);
        return job;
    }

    private void Wake()
    {
        try
        {
            _wake.Release();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private static int RowsOf(GenerationOptions o) =>
        o.NumBeams > 1 ? o.NumBeams : o.DoSample ? o.NumReturnSequences : 1;

    private void Loop()
    {
        using var noGrad = inference_mode();
        while (!_stopping)
        {
            var started = Stopwatch.GetTimestamp();
            var admitted = Admit();
            if (admitted.Count > 0) Prefill(admitted);
            int retired = Retire();
            int rows = _active.Sum(j => j.Search!.Rows);
            if (_active.Count > 0) DecodeStep();
            ActiveRows = rows;
            retired += Retire();
            if (admitted.Count > 0 || rows > 0 || retired > 0)
                Stepped?.Invoke(new BatchStep(admitted.Count, rows, retired, Stopwatch.GetElapsedTime(started)));
            if (_active.Count == 0 && QueueDepth == 0) _wake.Wait(TimeSpan.FromMilliseconds(200));
        }
        lock (_gate)
        {
            foreach (var job in _queue.Concat(_active)) job.Finish(null,
                new OperationCanceledException("the server is shutting down."));
            _queue.Clear();
            _active.Clear();
        }
    }

    /// <summary>Takes waiting requests while their rows fit the step (always one, when nothing is running).</summary>
    private List<GenerationJob> Admit()
    {
        var admitted = new List<GenerationJob>();
        int rows = _active.Sum(j => j.Search!.Rows);
        lock (_gate)
        {
            while (_queue.TryPeek(out var next))
            {
                if (next.Cancellation.IsCancellationRequested)
                {
                    _queue.Dequeue().Finish(null, new OperationCanceledException(next.Cancellation));
                    continue;
                }
                int need = RowsOf(next.Options);
                if (rows + need > MaxBatchRows && rows > 0) break;
                admitted.Add(_queue.Dequeue());
                rows += need;
            }
        }
        return admitted;
    }

    /// <summary>The admitted requests' image prefixes (see <see cref="BatchImagePrefix"/>), then each prompt's prefill
    /// and first token.</summary>
    private void Prefill(List<GenerationJob> jobs)
    {
        using var scope = NewDisposeScope();
        Tensor prefix;
        try
        {
            var pixels = jobs.Select(j => j.PixelValues).ToArray();
            prefix = BatchImagePrefix
                ? Model.ImagePrefix(cat(pixels, 0))                                                      // [B, Q, E]
                : cat(pixels.Select(Model.ImagePrefix).ToArray(), 0);
        }
        catch (Exception e)
        {
            foreach (var j in jobs) j.Finish(null, e);
            return;
        }
        for (int i = 0; i < jobs.Count; i++)
        {
            var job = jobs[i];
            try
            {
                using var jobScope = NewDisposeScope();
                var (embeds, mask) = Model.MergeImagePrefix(prefix.narrow(0, i, 1), job.InputIds, job.AttentionMask);
                var o = job.Options;
                job.State = Model.Opt is { } opt
                    ? new OptDecoderState(opt, embeds, mask, o.MaxNewTokens)
                    : new T5DecoderState(Model.T5!, embeds, mask, o.MaxNewTokens);
                job.Search = DecodingSearch.Create(o, o.EosTokenId ?? _generator.DefaultEos, _generator.PadTokenId,
                    job.State.InitialHistory, Model.Device);
                var logits = job.State.Next(null);                                                      // [1, V]
                int k = job.Search.Rows;
                if (k > 1)
                {
                    var expand = zeros(k, ScalarType.Int64, Model.Device);
                    job.State.Select(expand);
                    logits = logits.index_select(0, expand);                                            // [k, V]
                }
                _active.Add(job);
                Decide(job, logits);
            }
            catch (Exception e)
            {
                _active.Remove(job);
                job.Finish(null, e);
            }
        }
    }

    /// <summary>The job's search chooses from its logits; the chosen rows and tokens wait for the next step.</summary>
    private static void Decide(GenerationJob job, Tensor logits)
    {
        var decision = job.Search!.Next(logits, job.Emit);
        if (decision.Done) return;
        if (decision.Source is { } source)
        {
            using var index = tensor(source);
            job.State!.Select(index);
        }
        job.NextTokens = decision.Tokens;
    }

    /// <summary>One step of every running sequence: OPT states stacked into one pass, others one by one.</summary>
    private void DecodeStep()
    {
        using var scope = NewDisposeScope();
        var running = _active.Where(j => !j.Search!.Done && !j.Cancellation.IsCancellationRequested).ToList();
        var stacked = running.Where(j => j.State is OptDecoderState).ToList();
        try
        {
            if (stacked.Count > 0)
            {
                var tokens = tensor(stacked.SelectMany(j => j.NextTokens!).ToArray(), device: Model.Device);
                var logits = OptDecoderState.StepMany(Model.Opt!, [.. stacked.Select(j => (OptDecoderState)j.State!)],
                    tokens);
                long at = 0;
                foreach (var job in stacked)
                {
                    int k = job.Search!.Rows;
                    Decide(job, logits.narrow(0, at, k));
                    at += k;
                }
            }
        }
        catch (Exception e)
        {
            // A failure in the stacked pass leaves its caches in an unknown state: every request in it ends.
            foreach (var job in stacked)
            {
                _active.Remove(job);
                job.Finish(null, e);
            }
        }
        foreach (var job in running.Except(stacked))
        {
            try
            {
                using var tokens = tensor(job.NextTokens!, device: Model.Device);
                Decide(job, job.State!.Next(tokens));
            }
            catch (Exception e)
            {
                _active.Remove(job);
                job.Finish(null, e);
            }
        }
    }

    /// <summary>Ends the requests that are done or cancelled; returns how many.</summary>
    private int Retire()
    {
        int count = 0;
        foreach (var job in _active.ToList())
        {
            if (job.Cancellation.IsCancellationRequested) job.Finish(null,
                new OperationCanceledException(job.Cancellation));
            else if (job.Search!.Done) job.Finish(job.Search.Results());
            else continue;
            _active.Remove(job);
            count++;
        }
        return count;
    }

    /// <summary>Stops the loop; waiting and running requests end cancelled.</summary>
    public void Dispose()
    {
        if (_stopping) return;
        _stopping = true;
        _wake.Release();
        _loop.Join();
        _wake.Dispose();
    }
}
