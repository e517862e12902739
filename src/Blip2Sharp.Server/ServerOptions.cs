namespace Blip2Sharp.Server;

/// <summary>What `blip2 serve` serves and how (every field has a command-line option of the same name).</summary>
public sealed record ServerOptions
{
    /// <summary>The generation checkpoint folder (caption, VQA, chat).</summary>
    public required string Model { get; init; }
    /// <summary>The id clients send as "model" (default: the folder's name).</summary>
    public string? ModelName { get; init; }
    /// <summary>The retrieval checkpoint folder (embeddings, match, search, index); none: those routes say
    /// so.</summary>
    public string? RetrievalModel { get; init; }
    public string? RetrievalModelName { get; init; }
    /// <summary>The image index (SQLite file) that /v1/search reads and /v1/index adds to.</summary>
    public string? Db { get; init; }
    public string Host { get; init; } = "127.0.0.1";
    /// <summary>0 takes any free port (the address is printed when the server is ready).</summary>
    public int Port { get; init; } = 8080;
    /// <summary>Bearer key every route but /health (and the page at /) requires; null: no key.</summary>
    public string? ApiKey { get; init; }
    public bool QuantizeInt8 { get; init; }
    /// <summary>Most sequences decoded in one step (beams and returned sequences count one each).</summary>
    public int MaxBatch { get; init; } = 16;
    /// <summary>Most requests waiting for a slot; more are answered 429.</summary>
    public int MaxQueue { get; init; } = 64;
    public int MaxBodyMb { get; init; } = 20;
    /// <summary>The largest max_tokens a request may ask for.</summary>
    public int MaxTokensCap { get; init; } = 512;
    /// <summary>Hosts whose http(s) image URLs the server may fetch; empty: only data URLs.</summary>
    public IReadOnlyList<string> ImageUrlHosts { get; init; } = [];
    /// <summary>A generation that takes longer is cancelled (its slot freed) and answered 504.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromMinutes(5);
    /// <summary>On SIGTERM or Ctrl-C: how long in-flight requests may take to finish before they are
    /// cancelled.</summary>
    public TimeSpan ShutdownTimeout { get; init; } = TimeSpan.FromSeconds(20);
    /// <summary>Where the server says it is ready, and other one-line news (standard error for the CLI).</summary>
    public Action<string>? Log { get; init; }

    public string GenerationId => ModelName
        ?? Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(Model)));

    public string? RetrievalId => RetrievalModel is null ? null
        : RetrievalModelName ?? Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(RetrievalModel)));
}
