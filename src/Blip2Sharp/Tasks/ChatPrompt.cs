using System.Text;
using Blip2Sharp.Generation;

namespace Blip2Sharp.Tasks;

/// <summary>
/// The chat context as the BLIP-2 demos chain it: every earlier turn as "Question: … Answer: … ." in front of the new
/// question in the paper's VQA prompt (<see cref="Blip2Pipeline.VqaPrompt"/>). Shared by `blip2 chat`, the server's
/// chat completions and the IChatClient.
/// </summary>
public static class ChatPrompt
{
    /// <summary>The prompt with the turns from <paramref name="firstTurn"/> on in front of the question.</summary>
    public static string From(Blip2Pipeline pipeline, IReadOnlyList<(string Question, string Answer)> turns,
        int firstTurn, string question)
    {
        var sb = new StringBuilder();
        foreach (var (q, a) in turns.Skip(firstTurn)) sb.Append(pipeline.VqaPrompt(q)).Append(' ').Append(a)
            .Append(". ");
        sb.Append(pipeline.VqaPrompt(question));
        return sb.ToString();
    }

    /// <summary>
    /// The prompt of a chat request: "" (a caption, as `blip2 caption`) when there is neither a question nor an earlier
    /// turn, else <see cref="Fitting"/>'s from the first turn. A prompt that does not fit the context is refused
    /// (ArgumentException).
    /// </summary>
    public static string For(Blip2Pipeline pipeline, IReadOnlyList<(string Question, string Answer)> turns, string question,
        GenerationOptions options)
    {
        if (turns.Count > 0 || question.Length > 0) return Fitting(pipeline, turns, 0, question, options).Prompt;
        if (pipeline.ContextProblem("", options) is { } problem) throw new ArgumentException(problem);
        return "";
    }

    /// <summary>
    /// The prompt for the question, leaving out the oldest turns (from <paramref name="firstTurn"/> on) while it does
    /// not fit the language model's context, and the number of turns then left out; a question that does not fit even
    /// alone is refused (ArgumentException).
    /// </summary>
    public static (string Prompt, int LeftOut) Fitting(Blip2Pipeline pipeline,
        IReadOnlyList<(string Question, string Answer)> turns,
        int firstTurn, string question, GenerationOptions options)
    {
        for (int first = firstTurn; ; first++)
        {
            string prompt = From(pipeline, turns, first, question);
            if (pipeline.ContextProblem(prompt, options) is not { } problem) return (prompt, first);
            if (first >= turns.Count)
                throw new ArgumentException(turns.Count == 0 ? problem : $"this question alone: {problem}");
        }
    }

    /// <summary>
    /// Chat messages (role, text) read as BLIP-2 chats: the earlier user/assistant pairs become the turns (a pair
    /// whose user text is empty, such as an image sent alone and its caption, adds nothing), the last message (the
    /// user's) is the question, and an empty question with no turns asks for a caption. System and developer messages
    /// are accepted and not used: BLIP-2 has no system prompt. Refusals are <see cref="InvalidSettingException"/>s
    /// naming "messages".
    /// </summary>
    public static (List<(string Question, string Answer)> Turns, string Question) Read(
        IReadOnlyList<(string Role, string Text)> messages)
    {
        if (messages.Count == 0) throw new InvalidSettingException("messages",
            "there are no messages: send a user message with an image.");
        var turns = new List<(string, string)>();
        string? user = null;
        for (int i = 0; i < messages.Count; i++)
        {
            var (role, text) = messages[i];
            switch (role)
            {
                case "system" or "developer":
                    break;
                case "user":
                    user = user is null ? text : $"{user} {text}".Trim();
                    break;
                case "assistant":
                    if (user is { Length: > 0 } q) turns.Add((q, text));
                    user = null;
                    break;
                default:
                    throw new InvalidSettingException($"messages[{i}].role",
                        $"messages[{i}].role '{role}' is not supported: use system, user or assistant.");
            }
        }
        if (messages[^1].Role != "user")
            throw new InvalidSettingException("messages",
                "the last message must be the user's (the question, or an image alone for a caption).");
        string question = user ?? "";
        if (question.Length == 0 && turns.Count > 0)
            throw new InvalidSettingException($"messages[{messages.Count - 1}].content",
                "the last user message has no text: ask a question.");
        return (turns, question);
    }
}
