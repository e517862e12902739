using Blip2Sharp.Generation;
using Blip2Sharp.Tasks;

namespace Blip2Sharp.Server;

/// <summary>
/// The models behind the routes, loaded in the background when the server starts (GET /health answers 503 until
/// they are ready): the generation pipeline with its continuous batcher, and optionally the retrieval model and the
/// image index. The retrieval model and the index serve one request at a time (SQLite, and short calls).
/// </summary>
public sealed class ServedModels(ServerOptions options, ServerMetrics metrics) : IDisposable
{
    private Task? _loading;
    private Blip2Pipeline? _pipeline;
    private ContinuousBatcher? _batcher;
    private Blip2Retriever? _retriever;
    private IVectorStore? _store;

    public ServerOptions Options => options;

    /// <summary>Serialises the retrieval model and the index.</summary>
    public SemaphoreSlim RetrievalGate { get; } = new(1, 1);

    public void StartLoading() => _loading ??= Task.Run(Load);

    public bool Ready => _loading is { IsCompletedSuccessfully: true };

    /// <summary>Why loading failed (the server keeps answering /health with it), or null.</summary>
    public string? LoadError => _loading is { IsFaulted: true } t ? t.Exception!.InnerException!.Message : null;

    public Task Loading => _loading ?? Task.CompletedTask;

    private void Load()
    {
        _pipeline = Blip2Pipeline.FromPretrained(options.Model, quantizeInt8: options.QuantizeInt8);
        foreach (var w in _pipeline.Warnings) options.Log?.Invoke($"warning: {w}");
        _batcher = new ContinuousBatcher(_pipeline.Model, options.MaxBatch, options.MaxQueue);
        _batcher.Stepped += metrics.OnStep;
        metrics.Watch(_batcher);
        if (options.RetrievalModel is { } r)
        {
            _retriever = Blip2Retriever.FromPretrained(r);
            foreach (var w in _retriever.Warnings) options.Log?.Invoke($"warning: {w}");
        }
        if (options.Db is { } db) _store = new SqliteVectorStore(db);
    }

    private void RequireReady()
    {
        if (LoadError is { } e) throw new ApiException(503, $"the model failed to load: {e}", "service_unavailable");
        if (!Ready) throw new ApiException(503, "the model is still loading; retry when GET /health answers 200.",
            "service_unavailable");
    }

    public Blip2Pipeline Pipeline
    {
        get
        {
            RequireReady();
            return _pipeline!;
        }
    }

    public ContinuousBatcher Batcher
    {
        get
        {
            RequireReady();
            return _batcher!;
        }
    }

    /// <summary>The retrieval model; a 400 that says how to start the server with one if there is none.</summary>
    public Blip2Retriever Retriever
    {
        get
        {
            RequireReady();
            return _retriever ?? throw ApiException.BadRequest(
                "this server has no retrieval model: start it with --retrieval-model DIR (a blip2-itm checkpoint).",
                    code: "no_retrieval_model");
        }
    }

    /// <summary>The image index; a 400 that says how to start the server with one if there is none.</summary>
    public IVectorStore Store
    {
        get
        {
            RequireReady();
            return _store
                ?? throw ApiException.BadRequest("this server has no image index: start it with --db FILE.",
                code: "no_index");
        }
    }

    /// <summary>Where uploaded images are kept: the index's folder, or DB.images/ beside a new index.</summary>
    public string IndexRoot => Store.Fingerprint is null ? Path.GetFullPath(options.Db! + ".images")
        : ImageIndex.RootOf(Store);

    /// <summary>A model id a request names: null or the served one passes, another is a 404.</summary>
    public void RequireModel(string? requested, string served, string param = "model")
    {
        if (requested is null || requested == served) return;
        throw new ApiException(404,
            $"the model '{requested}' does not exist here; GET /v1/models lists what this server serves ('{served}').",
            param: param, code: "model_not_found");
    }

    public void Dispose()
    {
        try
        {
            _loading?.Wait();
        }
        catch (AggregateException)
        {
        }
        _batcher?.Dispose();
        _pipeline?.Dispose();
        _retriever?.Dispose();
        _store?.Dispose();
    }
}
