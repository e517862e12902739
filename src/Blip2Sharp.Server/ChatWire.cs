using System.Text.Json;
using System.Text.Json.Serialization;

namespace Blip2Sharp.Server;

/// <summary>
/// POST /v1/chat/completions, OpenAI's request: messages whose content is a string or a list of parts
/// ({"type": "text", "text"} and one {"type": "image_url", "image_url": {"url": "data:image/png;base64,…"}}), the
/// sampling
/// parameters, and BLIP-2's generation extras by transformers' names. Fields not listed are ignored.
/// </summary>
public sealed record ChatCompletionRequest
{
    public string? Model { get; init; }
    public List<ChatMessage>? Messages { get; init; }
    /// <summary>Most new tokens (the server's default: 30, as `blip2 caption` and `blip2 chat`).</summary>
    public int? MaxTokens { get; init; }
    public int? MaxCompletionTokens { get; init; }
    /// <summary>0 or absent: greedy decoding (the CLI's default); above 0: sampling at that temperature.</summary>
    public double? Temperature { get; init; }
    public double? TopP { get; init; }
    public int? TopK { get; init; }
    /// <summary>Sequences returned: needs sampling (temperature above 0) or num_beams ≥ n.</summary>
    public int? N { get; init; }
    /// <summary>A string or up to four strings: the answer ends before the first one that appears.</summary>
    public JsonElement? Stop { get; init; }
    public long? Seed { get; init; }
    public bool? Stream { get; init; }
    public StreamOptions? StreamOptions { get; init; }
    public int? NumBeams { get; init; }
    public double? LengthPenalty { get; init; }
    public double? RepetitionPenalty { get; init; }
    public int? NoRepeatNgramSize { get; init; }
    public int? MinNewTokens { get; init; }
}

public sealed record StreamOptions
{
    public bool? IncludeUsage { get; init; }
}

public sealed record ChatMessage
{
    public string? Role { get; init; }
    /// <summary>A string, or a list of text and image_url parts.</summary>
    public JsonElement? Content { get; init; }
}

public sealed record ChatCompletion(string Id, string Object, long Created, string Model, List<ChatChoice> Choices,
    Usage Usage);

public sealed record ChatChoice(
    int Index,
    AssistantMessage Message,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? FinishReason,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] object? Logprobs = null);

public sealed record AssistantMessage(string Role, string Content);

public sealed record Usage(int PromptTokens, int CompletionTokens, int TotalTokens);

public sealed record ChatCompletionChunk(string Id, string Object, long Created, string Model,
    List<ChunkChoice> Choices, Usage? Usage = null);

public sealed record ChunkChoice(
    int Index,
    Delta Delta,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? FinishReason,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] object? Logprobs = null);

public sealed record Delta(string? Role = null, string? Content = null);
