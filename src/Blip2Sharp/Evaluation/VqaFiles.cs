using System.Text.Json;
using System.Text.Json.Nodes;

namespace Blip2Sharp.Evaluation;

/// <summary>The official VQA v2 files: annotations ({"annotations": [...]}) and results ([{question_id, answer}]).</summary>
public static class VqaFiles
{
    private static JsonNode Read(string path, string expected)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: file not found.", path);
        try
        {
            return JsonNode.Parse(File.ReadAllText(path)) ?? throw new JsonException("empty");
        }
        catch (JsonException e)
        {
            throw new Blip2Exception($"{path}: not JSON ({e.Message}); expected {expected}.");
        }
    }

    /// <summary>Questions with their ten answers and types, in the annotation file's order.</summary>
    public static List<VqaQuestion> Annotations(string path)
    {
        const string expected = "VQA annotations: {\"annotations\": [{\"question_id\", \"answers\", \"question_type\", \"answer_type\"}]}";
        if (Read(path, expected)["annotations"] is not JsonArray a) throw new Blip2Exception($"{path}: no \"annotations\" list; expected {expected}.");
        try
        {
            return [.. a.Select(x => new VqaQuestion(x!["question_id"]!.GetValue<long>(),
                [.. x["answers"]!.AsArray().Select(y => y!["answer"]!.GetValue<string>())],
                x["question_type"]!.GetValue<string>(), x["answer_type"]!.GetValue<string>()))];
        }
        catch (Exception e) when (e is NullReferenceException or InvalidOperationException or FormatException)
        {
            throw new Blip2Exception($"{path}: an annotation lacks a field or has the wrong type; expected {expected}.");
        }
    }

    /// <summary>The question ids of a VQA v2 questions file ({"questions": [{"question_id", ...}]}).</summary>
    public static HashSet<long> QuestionIds(string path)
    {
        const string expected = "VQA questions: {\"questions\": [{\"question_id\", \"question\", \"image_id\"}]}";
        if (Read(path, expected)["questions"] is not JsonArray a) throw new Blip2Exception($"{path}: no \"questions\" list; expected {expected}.");
        return [.. a.Select(x => x?["question_id"]?.GetValue<long>()
            ?? throw new Blip2Exception($"{path}: a question without question_id; expected {expected}."))];
    }

    /// <summary>Predicted answers by question id.</summary>
    public static Dictionary<long, string> Results(string path)
    {
        const string expected = "VQA results: [{\"question_id\", \"answer\"}]";
        if (Read(path, expected) is not JsonArray a) throw new Blip2Exception($"{path}: not a list; expected {expected}.");
        try
        {
            return a.ToDictionary(x => x!["question_id"]!.GetValue<long>(), x => x!["answer"]!.GetValue<string>());
        }
        catch (Exception e) when (e is NullReferenceException or InvalidOperationException or FormatException or ArgumentException)
        {
            throw new Blip2Exception($"{path}: a result lacks question_id or answer, or repeats a question; expected {expected}.");
        }
    }
}
