using System.Text.Json;
using System.Text.Json.Serialization;

namespace Blip2Sharp.Server;

/// <summary>JSON as the OpenAI API writes it: snake_case names, nulls left out unless a field says otherwise.</summary>
public static class Wire
{
    public static JsonSerializerOptions Json { get; } = new(JsonSerializerDefaults.Web)
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>Reads a JSON body into T; a malformed one is a 400 that says where it went wrong.</summary>
    public static async Task<T> ReadAsync<T>(HttpRequest request, CancellationToken ct) where T : class
    {
        if (request.ContentType is { } type && !type.StartsWith("application/json", StringComparison.OrdinalIgnoreCase))
            throw ApiException.BadRequest($"the body must be JSON (Content-Type: application/json), not {type}.");
        try
        {
            return await JsonSerializer.DeserializeAsync<T>(request.Body, Json, ct)
                ?? throw ApiException.BadRequest("the body is JSON null; send a JSON object.");
        }
        catch (JsonException e)
        {
            string where = e.Path is { Length: > 0 } p ? $" at {p}" : "";
            throw ApiException.BadRequest($"malformed JSON body{where}: {e.Message.Split(" Path:")[0]}",
                code: "invalid_json");
        }
    }
}
