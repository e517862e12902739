using System.Diagnostics.Metrics;
using Blip2Sharp.Generation;

namespace Blip2Sharp.Server;

/// <summary>
/// The server's instruments (System.Diagnostics.Metrics, exported at GET /metrics in Prometheus' text format by
/// OpenTelemetry): requests by route and status, queue depth, active sequences, batch sizes, prompt and completion
/// tokens, time to first token, and tokens per second of each request.
/// </summary>
public sealed class ServerMetrics : IDisposable
{
    public const string MeterName = "Blip2Sharp.Server";

    private readonly Meter _meter = new(MeterName);
    private readonly Counter<long> _requests;
    private readonly Histogram<int> _batchRows;
    private readonly Counter<long> _promptTokens;
    private readonly Counter<long> _completionTokens;
    private readonly Histogram<double> _timeToFirstToken;
    private readonly Histogram<double> _tokensPerSecond;
    private ContinuousBatcher? _batcher;

    public ServerMetrics()
    {
        _requests = _meter.CreateCounter<long>("blip2.requests", description: "HTTP requests by route and status");
        _batchRows = _meter.CreateHistogram<int>("blip2.batch.rows", unit: null,
            description: "sequences decoded together in one step",
            tags: null, advice: new InstrumentAdvice<int> { HistogramBucketBoundaries = [1, 2, 4, 8, 16, 32, 64] });
        _promptTokens = _meter.CreateCounter<long>("blip2.prompt.tokens",
            description: "prompt tokens, the image's query tokens included");
        _completionTokens = _meter.CreateCounter<long>("blip2.completion.tokens", description: "generated tokens");
        _timeToFirstToken = _meter.CreateHistogram<double>("blip2.time_to_first_token", unit: "s",
            description: "from arrival to the first new token",
            tags: null,
                advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1, 2.5, 5, 10, 30] });
        _tokensPerSecond = _meter.CreateHistogram<double>("blip2.tokens_per_second", unit: null,
            description: "generated tokens per second of each request",
            tags: null,
                advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [1, 2, 5, 10, 20, 50, 100, 200, 500,
                1000] });
        _meter.CreateObservableGauge("blip2.queue.depth", () => _batcher?.QueueDepth ?? 0,
            description: "requests waiting for a slot");
        _meter.CreateObservableGauge("blip2.active.sequences", () => _batcher?.ActiveRows ?? 0,
            description: "sequences in the latest decoding step");
    }

    public void Watch(ContinuousBatcher batcher) => _batcher = batcher;

    public void OnStep(BatchStep step)
    {
        if (step.DecodedRows > 0) _batchRows.Record(step.DecodedRows);
    }

    public void Request(string route, int status) =>
        _requests.Add(1, new KeyValuePair<string, object?>("route", route), new KeyValuePair<string,
            object?>("status", status));

    public void Generation(int promptTokens, int completionTokens, TimeSpan? firstToken, TimeSpan total)
    {
        _promptTokens.Add(promptTokens);
        _completionTokens.Add(completionTokens);
        if (firstToken is { } t) _timeToFirstToken.Record(t.TotalSeconds);
        if (total > TimeSpan.Zero
            && completionTokens > 0) _tokensPerSecond.Record(completionTokens / total.TotalSeconds);
    }

    public void Dispose() => _meter.Dispose();
}
