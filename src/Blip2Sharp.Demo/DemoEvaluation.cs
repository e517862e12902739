using System.Text.Json.Nodes;
using Blip2Sharp.Evaluation;
using Blip2Sharp.Generation;
using Blip2Sharp.Tasks;
using Blip2Sharp.Training;

namespace Blip2Sharp.Demo;

/// <summary>The demo's numbers, as fractions: captions with every object right, zero-shot VQA, retrieval R@1 / R@5.</summary>
public sealed record DemoMetrics(double CaptionAccuracy, double VqaAccuracy, IReadOnlyDictionary<string, double> VqaByKind,
    double? RetrievalT2iR1, double? RetrievalI2tR1, double? RetrievalT2iR5, double? RetrievalI2tR5, int Images,
    IReadOnlyList<DemoSample> Samples, IReadOnlyList<DemoPrediction> Predictions);

/// <summary>One test scene as the model saw it: its generated caption and its zero-shot answers (question, answer, expected).</summary>
public sealed record DemoSample(string Image, string Caption, bool CaptionCorrect, IReadOnlyList<(string Question, string Answer, string Expected)> Answers);

/// <summary>
/// One scored prediction: a caption (no question; expected is the scene's first caption, though any caption naming
/// every object right counts) or an answer. <see cref="ToJson"/> is a line of `blip2 demo eval --predictions`.
/// </summary>
public sealed record DemoPrediction(string Image, Scene Scene, string? Question, string Expected, string Predicted, bool Correct)
{
    public JsonObject ToJson()
    {
        var o = new JsonObject { ["image"] = Image, ["scene"] = Scene.ToJson() };
        if (Question is not null) o["question"] = Question;
        o["expected"] = Expected;
        o["predicted"] = Predicted;
        o["correct"] = Correct;
        return o;
    }
}

/// <summary>
/// Evaluates a demo model on a scene split: a caption counts when it names every object with its size, colour,
/// shape and place (left, middle, right) and no other object; VQA uses the paper's prompt ("Question: {} Answer:") on
/// colour, shape and count questions, never seen with an image in training, and an answer counts when it equals the
/// expected one after the official VQA normalisation (<see cref="VqaAnswer"/>); retrieval ranks the split's images
/// and captions (ITC top-k re-ranked by ITM).
/// </summary>
public static class DemoEvaluation
{
    private static readonly string[] ShapeWords = ["circle", "square", "triangle"];

    public static bool CaptionCorrect(string caption, IReadOnlyList<SceneObject> objects)
    {
        string c = caption.ToLowerInvariant();
        if (!objects.All(o => c.Contains($"{o.Describe()} {o.Place}"))) return false;
        int mentioned = c.Split([' ', ',', '.'], StringSplitOptions.RemoveEmptyEntries).Count(w => ShapeWords.Contains(w));
        return mentioned == objects.Count;
    }

    /// <summary>Whether a generated answer is the expected one: equal after the VQA normalisation, not merely starting with it.</summary>
    public static bool AnswerCorrect(string generated, string answer) => VqaAnswer.Matches(generated, answer);

    /// <summary>Evaluates a generation checkpoint and, when given, a retrieval checkpoint (the ablation without stage 1 has none).</summary>
    public static DemoMetrics Evaluate(string generationDir, string? retrievalDir, string dataDir, string split = "test", int batch = 32, int kTest = 16, Action<string>? log = null)
    {
        var scenes = File.ReadLines(Path.Combine(dataDir, $"{split}_scenes.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
        var images = scenes.Select(s => Path.Combine(dataDir, s["image"]!.GetValue<string>())).ToList();
        var parsed = scenes.Select(Scene.FromJson).ToList();
        var objects = parsed.Select(s => s.Objects).ToList();
        var predictions = new List<DemoPrediction>();

        using var pipeline = Blip2Pipeline.FromPretrained(generationDir);
        var greedy = new GenerationOptions { MaxNewTokens = 48 };
        int correct = 0;
        var samples = new List<(string Image, string Caption, bool Correct)>();
        log?.Invoke($"captioning {images.Count} test scenes");
        for (int start = 0; start < images.Count; start += batch)
        {
            var chunk = images.Skip(start).Take(batch).ToList();
            var results = NativeScalarRace.Retry(() => pipeline.Run(chunk, chunk.Select(_ => "").ToList(), greedy), log);
            for (int i = 0; i < chunk.Count; i++)
            {
                bool ok = CaptionCorrect(results[i].Text, objects[start + i]);
                if (ok) correct++;
                var scene = parsed[start + i];
                predictions.Add(new DemoPrediction(scenes[start + i]["image"]!.GetValue<string>(), scene, null, scene.Captions()[0], results[i].Text.Trim(), ok));
                if (samples.Count < 16) samples.Add((chunk[i], results[i].Text.Trim(), ok));
            }
        }

        var questions = File.ReadLines(Path.Combine(dataDir, $"{split}_qa.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject())
            .Where(q => q["kind"]!.GetValue<string>() is "color" or "shape" or "count").ToList();
        var byKind = new Dictionary<string, (int Right, int Total)>();
        var sceneOf = scenes.Select((x, i) => (x["image"]!.GetValue<string>(), parsed[i])).ToDictionary(x => x.Item1, x => x.Item2);
        var short_ = new GenerationOptions { MaxNewTokens = 5 };
        var sampleAnswers = samples.ToDictionary(x => x.Image, _ => new List<(string, string, string)>());
        log?.Invoke($"answering {questions.Count} questions (zero-shot)");
        for (int start = 0; start < questions.Count; start += batch)
        {
            var chunk = questions.Skip(start).Take(batch).ToList();
            var results = NativeScalarRace.Retry(() => pipeline.Run(chunk.Select(q => Path.Combine(dataDir, q["image"]!.GetValue<string>())).ToList(),
                chunk.Select(q => pipeline.VqaPrompt(q["question"]!.GetValue<string>())).ToList(), short_), log);
            for (int i = 0; i < chunk.Count; i++)
            {
                string kind = chunk[i]["kind"]!.GetValue<string>();
                var (r, t) = byKind.GetValueOrDefault(kind);
                string expected = chunk[i]["answer"]!.GetValue<string>();
                bool ok = AnswerCorrect(results[i].Text, expected);
                byKind[kind] = (r + (ok ? 1 : 0), t + 1);
                predictions.Add(new DemoPrediction(chunk[i]["image"]!.GetValue<string>(), sceneOf[chunk[i]["image"]!.GetValue<string>()],
                    chunk[i]["question"]!.GetValue<string>(), expected, results[i].Text.Trim(), ok));
                if (sampleAnswers.TryGetValue(results[i].Image, out var list)) list.Add((chunk[i]["question"]!.GetValue<string>(), results[i].Text.Trim(), expected));
            }
        }

        int right = byKind.Values.Sum(v => v.Right), total = byKind.Values.Sum(v => v.Total);
        var demoSamples = samples.Select(x => new DemoSample(x.Image, x.Caption, x.Correct, sampleAnswers[x.Image])).ToList();
        var vqaByKind = byKind.ToDictionary(kv => kv.Key, kv => (double)kv.Value.Right / kv.Value.Total);
        double captionAccuracy = (double)correct / images.Count, vqa = total == 0 ? 0 : (double)right / total;
        if (retrievalDir is null) return new DemoMetrics(captionAccuracy, vqa, vqaByKind, null, null, null, null, images.Count, demoSamples, predictions);

        log?.Invoke($"retrieval among {images.Count} test scenes");
        using var retriever = Blip2Retriever.FromPretrained(retrievalDir);
        var captions = File.ReadLines(Path.Combine(dataDir, $"{split}.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject())
            .GroupBy(x => x["image"]!.GetValue<string>()).ToDictionary(g => g.Key, g => g.Select(x => x["caption"]!.GetValue<string>()).ToList());
        var texts = new List<string>();
        var t2i = new List<int>();
        var i2t = new List<int>[scenes.Count];
        for (int i = 0; i < scenes.Count; i++)
        {
            i2t[i] = [];
            foreach (var c in captions[scenes[i]["image"]!.GetValue<string>()])
            {
                i2t[i].Add(texts.Count);
                t2i.Add(i);
                texts.Add(c);
            }
        }
        var m = NativeScalarRace.Retry(() => RetrievalEvaluation.Evaluate(retriever, new RetrievalEvaluation.Dataset(images, texts, [.. t2i], i2t), kTest), log);

        return new DemoMetrics(captionAccuracy, vqa, vqaByKind, m.T2iR1, m.I2tR1, m.T2iR5, m.I2tR5, images.Count, demoSamples, predictions);
    }
}
