using System.ComponentModel;
using System.Text.Json.Nodes;
using Blip2Sharp.Evaluation;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Blip2Sharp.Cli.Commands;

/// <summary>`blip2 eval vqa`, scoring only: VQA accuracy as the official evaluation computes it.</summary>
public sealed class EvalVqaCommand : Command<EvalVqaCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--predictions <FILE>")]
        [Description("Predicted answers in the official results format: [[{\"question_id\", \"answer\"}]].")]
        public string Predictions { get; init; } = "";

        [CommandOption("--annotations <FILE>")]
        [Description("VQA v2 annotations (ten answers, question_type, answer_type per question).")]
        public string Annotations { get; init; } = "";

        [CommandOption("--questions <FILE>")]
        [Description("VQA v2 questions (optional): checked to hold the same question ids as the annotations and results, " +
            "as the official evaluation asserts.")]
        public string? Questions { get; init; }

        [CommandOption("--json")]
        [Description("Print {\"corpus\": {overall, perAnswerType, perQuestionType}, \"per_item\": {question_id: accuracy}}.")]
        public bool Json { get; init; }

        public override ValidationResult Validate() =>
            string.IsNullOrWhiteSpace(Predictions) || string.IsNullOrWhiteSpace(Annotations)
                ? ValidationResult.Error("--predictions FILE and --annotations FILE are required.")
                : ValidationResult.Success();
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellationToken)
    {
        var annotations = VqaFiles.Annotations(s.Annotations);
        var results = VqaFiles.Results(s.Predictions);
        var ids = annotations.Select(a => a.QuestionId).ToHashSet();
        if (!results.Keys.ToHashSet().SetEquals(ids))
            throw new Blip2Exception($"{s.Predictions}: the results must answer exactly the annotated questions " +
                $"({results.Count} results, {ids.Count} questions), as the official evaluation requires.");
        if (s.Questions is { } q && !VqaFiles.QuestionIds(q).SetEquals(ids))
            throw new Blip2Exception($"{q}: its question ids differ from the annotations'.");
        var scores = VqaAccuracy.Evaluate(annotations, results);
        static JsonObject Map<T>(IReadOnlyDictionary<T, double> d) where T : notnull =>
            new([.. d.Select(kv => KeyValuePair.Create(kv.Key.ToString()!, (JsonNode?)kv.Value))]);
        if (s.Json)
        {
            Blip2Cli.Out(new JsonObject
            {
                ["corpus"] = new JsonObject
                {
                    ["overall"] = scores.Overall, ["perAnswerType"] = Map(scores.PerAnswerType),
                    ["perQuestionType"] = Map(scores.PerQuestionType),
                },
                ["per_item"] = Map(scores.PerQuestion),
            }.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
            return 0;
        }
        var table = new Table().Border(TableBorder.Rounded).AddColumn("").AddColumn(new TableColumn("VQA accuracy").RightAligned());
        table.AddRow("overall", $"{scores.Overall:F2}");
        foreach (var (type, v) in scores.PerAnswerType.OrderBy(kv => kv.Key, StringComparer.Ordinal)) table.AddRow(Markup.Escape(type), $"{v:F2}");
        Blip2Cli.Human.Write(table);
        Blip2Cli.Out($"{scores.PerQuestion.Count} questions");
        return 0;
    }
}
