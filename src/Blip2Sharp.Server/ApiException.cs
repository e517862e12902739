using System.Text.Json;
using System.Text.Json.Serialization;

namespace Blip2Sharp.Server;

/// <summary>
/// An error answered in OpenAI's shape, {"error": {"message", "type", "param", "code"}}, with its HTTP status; the
/// message says what to do.
/// </summary>
public sealed class ApiException(int status, string message, string type = "invalid_request_error",
    string? param = null, string? code = null)
    : Exception(message)
{
    public int Status { get; } = status;
    public string Type { get; } = type;
    public string? Param { get; } = param;
    public string? Code { get; } = code;

    public static ApiException BadRequest(string message, string? param = null, string? code = null)
        => new(400, message, param: param, code: code);

    public ErrorBody Body => new(new ErrorDetail(Message, Type, Param, Code));

    public sealed record ErrorBody(ErrorDetail Error);

    public sealed record ErrorDetail(
        string Message,
        string Type,
        [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Param,
        [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Code);

    public async Task WriteAsync(HttpResponse response)
    {
        response.StatusCode = Status;
        response.ContentType = "application/json";
        await response.WriteAsync(JsonSerializer.Serialize(Body, Wire.Json));
    }
}
