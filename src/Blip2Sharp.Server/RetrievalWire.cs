using System.Text.Json;

namespace Blip2Sharp.Server;

/// <summary>
/// POST /v1/embeddings: "input" is a string or a list of strings; a string that is an image data URL
/// (data:image/…;base64,…) is embedded as an image, as llama.cpp and vLLM extend this endpoint.
/// </summary>
public sealed record EmbeddingsRequest
{
    public string? Model { get; init; }
    public JsonElement? Input { get; init; }
    /// <summary>"float" (default) or "base64" (little-endian float32, as OpenAI).</summary>
    public string? EncodingFormat { get; init; }
}

/// <summary>
/// A text's embedding is the Q-Former's [CLS] text feature (256 values, unit length); an image's is its query
/// embeddings, num_query_tokens × 256 values row after row (each row unit length), with "shape" saying so.
/// </summary>
public sealed record EmbeddingItem(string Object, int Index, object Embedding, int[] Shape, string Modality);

public sealed record EmbeddingsResponse(string Object, List<EmbeddingItem> Data, string Model, EmbeddingsUsage Usage);

public sealed record EmbeddingsUsage(int PromptTokens, int TotalTokens);

/// <summary>POST /v1/match: one image (data URL) scored against texts.</summary>
public sealed record MatchRequest
{
    public string? Model { get; init; }
    public string? Image { get; init; }
    public List<string>? Texts { get; init; }
}

/// <summary>Per text: ITM match probability (softmax of the ITM head, "match" column) and ITC similarity.</summary>
public sealed record MatchResult(string Text, double Itm, double Itc);

public sealed record MatchResponse(string Object, string Model, List<MatchResult> Data);

/// <summary>POST /v1/search: a text query (ITC over the index, the best rerank re-ranked by ITM) or an image
/// query.</summary>
public sealed record SearchRequest
{
    public string? Model { get; init; }
    public string? Query { get; init; }
    /// <summary>A data URL: search by image (similarity only; ITM does not score image against image).</summary>
    public string? Image { get; init; }
    public int? Top { get; init; }
    public int? Rerank { get; init; }
}

/// <summary>A hit: its id (path inside the indexed folder), the file, a URL that serves it, and its scores.</summary>
public sealed record SearchResult(string Id, string Path, string Url, double Score, double Itc, double? ItmLogit);

public sealed record SearchResponse(string Object, string Model, List<SearchResult> Data);

/// <summary>POST /v1/index: images (data URLs) added to the index, durable when the call returns.</summary>
public sealed record IndexRequest
{
    public string? Model { get; init; }
    public List<string>? Images { get; init; }
}

public sealed record IndexedImage(string Id, string Path, string Url);

public sealed record IndexResponse(string Object, List<IndexedImage> Data, int Total);

public sealed record ModelCard(string Id, string Object, long Created, string OwnedBy, string[] InputModalities,
    string[] OutputModalities, string[] Endpoints);

public sealed record ModelList(string Object, List<ModelCard> Data);
