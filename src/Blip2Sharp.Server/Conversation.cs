using System.Text.Json;
using Blip2Sharp.Tasks;

namespace Blip2Sharp.Server;

/// <summary>
/// The messages of a chat completion: one image (an image_url part, in any user message) and the texts, read into
/// turns and a question as <see cref="ChatPrompt.Read"/> does.
/// </summary>
public sealed record Conversation(List<(string Question, string Answer)> Turns, string Question, string ImageUrl,
    string ImageParam)
{
    public static Conversation Parse(List<ChatMessage>? messages)
    {
        if (messages is null || messages.Count == 0)
            throw ApiException.BadRequest("messages is empty: send at least one user message with an image_url part.",
                "messages");
        string? image = null, imageParam = null;
        var texts = new List<(string Role, string Text)>();
        for (int i = 0; i < messages.Count; i++)
            texts.Add((messages[i].Role ?? "", Text(messages[i].Content, $"messages[{i}]", messages[i].Role == "user",
                ref image, ref imageParam)));
        var (turns, question) = ChatPrompt.Read(texts);
        if (image is null)
            throw ApiException.BadRequest("BLIP-2 answers about an image: add one {\"type\": \"image_url\"} part with a data URL " +
                "(data:image/png;base64,…) to a user message.", "messages", "image_required");
        return new Conversation(turns, question, image, imageParam!);
    }

    private static string Text(JsonElement? content, string param, bool imagesAllowed, ref string? image,
        ref string? imageParam)
    {
        if (content is not { } c || c.ValueKind == JsonValueKind.Null) return "";
        if (c.ValueKind == JsonValueKind.String) return CheckText(c.GetString()!, $"{param}.content");
        if (c.ValueKind != JsonValueKind.Array)
            throw ApiException.BadRequest($"{param}.content must be a string or a list of parts.", $"{param}.content");
        var texts = new List<string>();
        int j = 0;
        foreach (var part in c.EnumerateArray())
        {
            string p = $"{param}.content[{j++}]";
            string? type = part.ValueKind == JsonValueKind.Object && part.TryGetProperty("type", out var t)
                && t.ValueKind == JsonValueKind.String
                ? t.GetString() : null;
            switch (type)
            {
                case "text":
                    if (!part.TryGetProperty("text", out var s) || s.ValueKind != JsonValueKind.String)
                        throw ApiException.BadRequest($"{p} is a text part without a \"text\" string.", p);
                    texts.Add(CheckText(s.GetString()!, $"{p}.text"));
                    break;
                case "image_url":
                    if (!imagesAllowed) throw ApiException.BadRequest($"{p}: only user messages may carry an image.",
                        p);
                    if (image is not null)
                        throw ApiException.BadRequest($"{p}: BLIP-2 reads one image per request and {imageParam} already holds one; send one image.",
                            p, "too_many_images");
                    image = ReadImageUrl(part, p);
                    imageParam = $"{p}.image_url";
                    break;
                default:
                    throw ApiException.BadRequest($"{p}: part type '{type}' is not supported: use text and image_url parts.", $"{p}.type");
            }
        }
        return string.Join(" ", texts.Where(x => x.Length > 0));
    }

    private static string ReadImageUrl(JsonElement part, string p)
    {
        if (part.TryGetProperty("image_url", out var u))
        {
            if (u.ValueKind == JsonValueKind.String) return u.GetString()!;
            if (u.ValueKind == JsonValueKind.Object && u.TryGetProperty("url", out var url)
                && url.ValueKind == JsonValueKind.String)
                return url.GetString()!;
        }
        throw ApiException.BadRequest($"{p} is an image_url part without {{\"image_url\": {{\"url\": …}}}}.",
            $"{p}.image_url");
    }

    private static string CheckText(string text, string param)
    {
        if (text.Contains("data:image/", StringComparison.OrdinalIgnoreCase))
            throw ApiException.BadRequest("a data:image/… URL was pasted inside a text part: send the image as an " +
                "{\"type\": \"image_url\", \"image_url\": {\"url\": \"data:image/…\"}} part instead.", param,
                    "image_in_text");
        return text.Trim();
    }
}
