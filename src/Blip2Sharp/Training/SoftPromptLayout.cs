namespace Blip2Sharp.Training;

/// <summary>
/// Where a text stands when it takes the place of a decoder-only LM's soft prompt of <c>length</c> positions: bos
/// first, then pad tokens, then the text's tokens, so that the text ends where the soft prompt ends and whatever
/// follows (BLIP-2 puts bos and the prompt there) stands at the same positions after the text as after the queries.
/// The demo's language model reads its descriptions at these positions in pre-training, and stage 2's prompt
/// alignment pulls the soft prompt toward the word embeddings of a text so placed.
/// </summary>
public static class SoftPromptLayout
{
    /// <summary>Whether a text of <paramref name="textTokens"/> tokens fits after bos in <paramref name="length"/> positions.</summary>
    public static bool Fits(int textTokens, int length) => textTokens <= length - 1;

    /// <summary>[bos, pad × (length − 1 − n), text₁ … textₙ]; a text longer than length − 1 tokens keeps its first length − 1.</summary>
    public static List<int> Place(IReadOnlyList<int> textIds, int length, int bos, int pad)
    {
        int n = Math.Min(textIds.Count, length - 1);
        var ids = new List<int>(length) { bos };
        ids.AddRange(Enumerable.Repeat(pad, length - 1 - n));
        ids.AddRange(textIds.Take(n));
        return ids;
    }
}
