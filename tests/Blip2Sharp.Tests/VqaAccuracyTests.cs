using System.Text.Json.Nodes;
using Blip2Sharp.Evaluation;
using Xunit;

namespace Blip2Sharp.Tests;

public class VqaAccuracyTests
{
    private static JsonNode Read(string file) =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(Fixtures.Dir("metrics"), file)))!;

    [Fact]
    public void EveryQuestionAndTheCorpusEqualTheOfficialEvaluation()
    {
        var questions = Read("vqa_annotations.json")["annotations"]!.AsArray().Select(a => new VqaQuestion(
            a!["question_id"]!.GetValue<long>(), [.. a["answers"]!.AsArray().Select(x => x!["answer"]!.GetValue<string>())],
            a["question_type"]!.GetValue<string>(), a["answer_type"]!.GetValue<string>())).ToList();
        var predictions = Read("vqa_predictions.json").AsArray()
            .ToDictionary(p => p!["question_id"]!.GetValue<long>(), p => p!["answer"]!.GetValue<string>());
        var golden = Read("vqa_golden.json");
        var scores = VqaAccuracy.Evaluate(questions, predictions);

        var perQuestion = golden["per_question"]!.AsArray();
        Assert.Equal(150, perQuestion.Count);
        foreach (var q in perQuestion)
        {
            long id = q!["question_id"]!.GetValue<long>();
            Assert.True(Math.Abs(q["accuracy_unrounded"]!.GetValue<double>() - scores.PerQuestion[id]) <= 1e-9,
                $"question {id} ({q["case"]}): {scores.PerQuestion[id]} against {q["accuracy_unrounded"]}");
        }
        var corpus = golden["accuracy_unrounded"]!;
        Assert.Equal(corpus["overall"]!.GetValue<double>(), scores.Overall, 9);
        foreach (var (type, value) in corpus["perAnswerType"]!.AsObject())
            Assert.Equal(value!.GetValue<double>(), scores.PerAnswerType[type], 9);
        foreach (var (type, value) in corpus["perQuestionType"]!.AsObject())
            Assert.Equal(value!.GetValue<double>(), scores.PerQuestionType[type], 9);
    }

    [Theory]
    [InlineData("Two", "2")]                           // number words, case
    [InlineData("the red one.", "red 1")]              // articles, a final period
    [InlineData("yes!", "yes")]                        // '!' touches no space: replaced by a space, then split away
    [InlineData("black-and-white", "black and white")] // '-' touches no space: a space
    [InlineData("black - white", "black white")]       // '-' touches a space: deleted everywhere
    [InlineData("3.5", "3.5")]                         // a period before a digit stays
    [InlineData("dont", "don't")]                      // contractions get their apostrophe
    [InlineData("1,000 red-ish", "1000 redish")]       // a digit-comma-digit deletes every punctuation mark
    public void AnswersNormaliseAsTheReferenceDoes(string answer, string normalised) =>
        Assert.Equal(normalised, VqaAnswer.Normalize(answer));

    [Fact]
    public void EvalVqaJsonGivesTheOfficialScores()
    {
        string dir = Fixtures.Dir("metrics");
        var r = CliRunner.Run("eval", "vqa", "--predictions", Path.Combine(dir, "vqa_predictions.json"), "--annotations",
            Path.Combine(dir, "vqa_annotations.json"), "--questions", Path.Combine(dir, "vqa_questions.json"), "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var j = JsonNode.Parse(r.Stdout)!;
        var golden = Read("vqa_golden.json");
        Assert.Equal(golden["accuracy_unrounded"]!["overall"]!.GetValue<double>(), (double)j["corpus"]!["overall"]!, 9);
        foreach (var (type, value) in golden["accuracy_unrounded"]!["perQuestionType"]!.AsObject())
            Assert.Equal(value!.GetValue<double>(), (double)j["corpus"]!["perQuestionType"]![type]!, 9);
        foreach (var q in golden["per_question"]!.AsArray())
            Assert.Equal(q!["accuracy_unrounded"]!.GetValue<double>(), (double)j["per_item"]![q["question_id"]!.ToString()]!, 9);
        // A file of the wrong format is one line naming what was expected.
        var wrong = CliRunner.Run("eval", "vqa", "--predictions", Path.Combine(dir, "vqa_annotations.json"), "--annotations",
            Path.Combine(dir, "vqa_annotations.json"));
        Assert.Equal(1, wrong.ExitCode);
        Assert.Contains("expected VQA results", wrong.Stderr);
    }
}
