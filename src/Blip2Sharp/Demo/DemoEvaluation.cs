using System.Text.Json.Nodes;
using Blip2Sharp.Generation;
using Blip2Sharp.Tasks;
using Blip2Sharp.Training;

namespace Blip2Sharp.Demo;

/// <summary>The demo's numbers, as fractions: captions with every object right, zero-shot VQA, retrieval R@1 / R@5.</summary>
public sealed record DemoMetrics(double CaptionAccuracy, double VqaAccuracy, IReadOnlyDictionary<string, double> VqaByKind,
    double? RetrievalT2iR1, double? RetrievalI2tR1, double? RetrievalT2iR5, double? RetrievalI2tR5, int Images, IReadOnlyList<DemoSample> Samples);

/// <summary>One test scene as the model saw it: its generated caption and its zero-shot answers (question, answer, expected).</summary>
public sealed record DemoSample(string Image, string Caption, bool CaptionCorrect, IReadOnlyList<(string Question, string Answer, string Expected)> Answers);

/// <summary>
/// Evaluates a demo model on a scene split: a caption counts when it names every object with its size, colour,
/// shape and place (left, middle, right) and no other object; VQA uses the paper's prompt ("Question: {} Answer:") on colour, shape and count
/// questions, never seen with an image in training; retrieval ranks the split's images and captions (ITC top-k
/// re-ranked by ITM).
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

    public static bool AnswerCorrect(string generated, string answer)
    {
        var words = generated.ToLowerInvariant().Split([' ', ',', '.', '?', '!'], StringSplitOptions.RemoveEmptyEntries);
        var expected = answer.Split(' ');
        return words.Length >= expected.Length && words.Take(expected.Length).SequenceEqual(expected);
    }

    /// <summary>Evaluates a generation checkpoint and, when given, a retrieval checkpoint (the ablation without stage 1 has none).</summary>
    public static DemoMetrics Evaluate(string generationDir, string? retrievalDir, string dataDir, string split = "test", int batch = 32, int kTest = 16, Action<string>? log = null)
    {
        var scenes = File.ReadLines(Path.Combine(dataDir, $"{split}_scenes.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
        var images = scenes.Select(s => Path.Combine(dataDir, s["image"]!.GetValue<string>())).ToList();
        var objects = scenes.Select(s => (IReadOnlyList<SceneObject>)s["objects"]!.AsArray().Select(o => new SceneObject(
            Enum.Parse<Shape>(o!["shape"]!.GetValue<string>(), ignoreCase: true), o["color"]!.GetValue<string>(), o["size"]!.GetValue<string>() == "large",
            o["column"]!.GetValue<int>(), o["row"]!.GetValue<int>())).ToList()).ToList();

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
                if (samples.Count < 16) samples.Add((chunk[i], results[i].Text.Trim(), ok));
            }
        }

        var questions = File.ReadLines(Path.Combine(dataDir, $"{split}_qa.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject())
            .Where(q => q["kind"]!.GetValue<string>() is "color" or "shape" or "count").ToList();
        var byKind = new Dictionary<string, (int Right, int Total)>();
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
                byKind[kind] = (r + (AnswerCorrect(results[i].Text, expected) ? 1 : 0), t + 1);
                if (sampleAnswers.TryGetValue(results[i].Image, out var list)) list.Add((chunk[i]["question"]!.GetValue<string>(), results[i].Text.Trim(), expected));
            }
        }

        int right = byKind.Values.Sum(v => v.Right), total = byKind.Values.Sum(v => v.Total);
        var demoSamples = samples.Select(x => new DemoSample(x.Image, x.Caption, x.Correct, sampleAnswers[x.Image])).ToList();
        var vqaByKind = byKind.ToDictionary(kv => kv.Key, kv => (double)kv.Value.Right / kv.Value.Total);
        double captionAccuracy = (double)correct / images.Count, vqa = total == 0 ? 0 : (double)right / total;
        if (retrievalDir is null) return new DemoMetrics(captionAccuracy, vqa, vqaByKind, null, null, null, null, images.Count, demoSamples);

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

        return new DemoMetrics(captionAccuracy, vqa, vqaByKind, m.T2iR1, m.I2tR1, m.T2iR5, m.I2tR5, images.Count, demoSamples);
    }
}
