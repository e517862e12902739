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
    public static string From(Blip2Pipeline pipeline, IReadOnlyList<(string Question, string Answer)> turns, int firstTurn, string question)
    {
        var sb = new StringBuilder();
        foreach (var (q, a) in turns.Skip(firstTurn)) sb.Append(pipeline.VqaPrompt(q)).Append(' ').Append(a).Append(". ");
        sb.Append(pipeline.VqaPrompt(question));
        return sb.ToString();
    }

    /// <summary>
    /// The prompt for the question, leaving out the oldest turns (from <paramref name="firstTurn"/> on) while it does
    /// not fit the language model's context, and the number of turns then left out; a question that does not fit even
    /// alone is refused (ArgumentException).
    /// </summary>
    public static (string Prompt, int LeftOut) Fitting(Blip2Pipeline pipeline, IReadOnlyList<(string Question, string Answer)> turns,
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
}
