namespace Blip2Sharp.Evaluation;

/// <summary>One question as the VQA evaluation scores it: its ten human answers and its two type labels.</summary>
public sealed record VqaQuestion(
    long QuestionId, IReadOnlyList<string> Answers, string QuestionType, string AnswerType);

/// <summary>Accuracies in percent, unrounded: overall, per answer type, per question type and per question.</summary>
public sealed record VqaScores(double Overall, IReadOnlyDictionary<string, double> PerAnswerType,
    IReadOnlyDictionary<string, double> PerQuestionType, IReadOnlyDictionary<long, double> PerQuestion);

/// <summary>
/// VQA accuracy as the official evaluation computes it (vqaEval.py at a013f00, evaluate): for each of the ten
/// human answers left out in turn, min(1, matches among the other nine / 3), averaged. Answers are normalised
/// (<see cref="VqaAnswer"/>) only when the humans gave more than one distinct answer; otherwise only newlines, tabs
/// and surrounding spaces are cleaned, and the prediction must equal their answer as it is.
/// </summary>
public static class VqaAccuracy
{
    /// <summary>A question's accuracy, 0–1.</summary>
    public static double Score(string predicted, IReadOnlyList<string> answers)
    {
        static string Clean(string s) => s.Replace('\n', ' ').Replace('\t', ' ').Trim();
        var humans = answers.Select(Clean).ToList();
        string prediction = Clean(predicted);
        if (humans.Distinct(StringComparer.Ordinal).Count() > 1)
        {
            humans = [.. humans.Select(VqaAnswer.Normalize)];
            prediction = VqaAnswer.Normalize(prediction);
        }
        double sum = 0;
        for (int left = 0; left < humans.Count; left++)
        {
            int matches = humans.Where((h, i) => i != left && h == prediction).Count();
            sum += Math.Min(1, matches / 3.0);
        }
        return humans.Count == 0 ? 0 : sum / humans.Count;
    }

    /// <summary>Every question scored against its prediction (a question without one is an error).</summary>
    public static VqaScores Evaluate(
        IReadOnlyList<VqaQuestion> questions, IReadOnlyDictionary<long, string> predictions)
    {
        var perQuestion = new Dictionary<long, double>();
        foreach (var q in questions)
        {
            if (!predictions.TryGetValue(q.QuestionId, out var answer))
                throw new Blip2Exception(
                    $"no prediction for question {q.QuestionId}: the predictions must answer every question.");
            perQuestion[q.QuestionId] = 100 * Score(answer, q.Answers);
        }
        Dictionary<string, double> By(Func<VqaQuestion, string> key) =>
            questions.GroupBy(key).ToDictionary(g => g.Key, g => g.Average(q => perQuestion[q.QuestionId]));
        double overall = questions.Count == 0 ? 0 : questions.Average(q => perQuestion[q.QuestionId]);
        return new VqaScores(overall, By(q => q.AnswerType), By(q => q.QuestionType), perQuestion);
    }
}
