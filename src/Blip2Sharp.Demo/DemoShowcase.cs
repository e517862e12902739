using System.Text.Json.Nodes;
using Blip2Sharp.Generation;
using Blip2Sharp.Tasks;
using static TorchSharp.torch;

namespace Blip2Sharp.Demo;

/// <summary>One new scene and what the demo model made of it.</summary>
public sealed record ShowcaseScene(string Image, Scene Scene, string Truth, string Caption, bool CaptionCorrect,
    IReadOnlyList<ShowcaseAnswer> Answers, ShowcaseSearch Search);

public sealed record ShowcaseAnswer(string Kind, string Question, string Expected, string Answer, bool Correct);

/// <summary>The scene's own caption used as a search query over all the new scenes: the best match and its ITM probability.</summary>
public sealed record ShowcaseSearch(string Query, string TopImage, double Probability, bool Correct);

/// <summary>
/// What `blip2 demo` does: renders new scenes nobody trained on, captions them, asks the paper's zero-shot questions
/// about them, and searches them by text (ITC ranking re-ranked by ITM), comparing everything with the scenes' truth.
/// </summary>
public static class DemoShowcase
{
    /// <summary>The two checkpoints of a demo model folder: generation/ (Blip2ForConditionalGeneration) and retrieval/ (Blip2ForImageTextRetrieval).</summary>
    public static (string Generation, string Retrieval) Folders(string modelDir)
    {
        string g = Path.Combine(modelDir, "generation"), r = Path.Combine(modelDir, "retrieval");
        if (!File.Exists(Path.Combine(g, "config.json")) || !File.Exists(Path.Combine(r, "config.json")))
        {
            string nested = Path.Combine(modelDir, "model");
            if (Directory.Exists(nested)) return Folders(nested);
            throw new Blip2Exception($"{modelDir}: not a demo model folder (it needs generation/config.json and retrieval/config.json, as `blip2 demo train` writes under OUT/model).");
        }
        return (g, r);
    }

    /// <summary>
    /// The keys of the scenes a demo model was trained on (train_keys.txt beside its generation/ and retrieval/
    /// folders), which its test scenes must avoid. A model folder without the file is refused: its figures would mix
    /// seen and unseen scenes.
    /// </summary>
    public static IReadOnlySet<string> TrainKeys(string generationDir)
    {
        string file = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(generationDir))!, SceneDataset.TrainKeysFile);
        if (!File.Exists(file))
            throw new Blip2Exception($"{file} is missing: a demo model lists the scenes it was trained on there (one " +
                "key a line, as `blip2 demo train` writes it), so that its test scenes can avoid them.");
        return SceneDataset.ReadKeys(file);
    }

    /// <summary>
    /// The image size the demo model's encoder takes: scenes are rendered at it, as in training. (`blip2 demo eval`
    /// rendered its test scenes at 64 px for the 96 px model, and the processor's upscaling blurred them: text→image
    /// R@1 82 % instead of 91 %.)
    /// </summary>
    public static int SceneSize(string generationDir) =>
        Configuration.Blip2Config.Load(generationDir, new Configuration.ConfigWarnings()).VisionConfig.ImageSize;

    public static List<ShowcaseScene> Run(string modelDir, string outDir, int count, int seed, Action<string>? log = null)
    {
        var (generationDir, retrievalDir) = Folders(modelDir);
        int size = SceneSize(generationDir);
        string imageDir = Path.Combine(outDir, "scenes");
        Directory.CreateDirectory(imageDir);
        var rng = new Random(seed);
        // New scenes: none shares its key with a training scene, and no two share one (search needs one right image).
        var trained = TrainKeys(generationDir);
        var keys = new HashSet<string>(StringComparer.Ordinal);
        var scenes = new List<Scene>();
        while (scenes.Count < count)
        {
            var scene = Scene.Random(rng);
            if (!trained.Contains(scene.Key) && keys.Add(scene.Key)) scenes.Add(scene);
        }
        var images = new List<string>();
        for (int i = 0; i < count; i++)
        {
            string path = Path.Combine(imageDir, $"scene-{i + 1:D2}.png");
            File.WriteAllBytes(path, scenes[i].RenderPng(size));
            images.Add(path);
        }

        log?.Invoke("captioning");
        List<ImageTextResult> captions;
        var questions = new List<(int Scene, string Kind, string Question, string Answer)>();
        List<ImageTextResult> answers;
        using (var pipeline = Blip2Pipeline.FromPretrained(generationDir))
        {
            captions = pipeline.Run(images, images.Select(_ => "").ToList(), new GenerationOptions { MaxNewTokens = 48 });
            for (int i = 0; i < count; i++)
            {
                // One question of each kind the model never saw with an image: colour, shape, count.
                foreach (var group in scenes[i].Questions(rng).Where(q => q.Kind is "color" or "shape" or "count").GroupBy(q => q.Kind))
                {
                    var q = group.ElementAt(rng.Next(group.Count()));
                    questions.Add((i, q.Kind, q.Question, q.Answer));
                }
            }
            log?.Invoke("answering questions");
            answers = pipeline.Run(questions.Select(q => images[q.Scene]).ToList(), questions.Select(q => pipeline.VqaPrompt(q.Question)).ToList(),
                new GenerationOptions { MaxNewTokens = 5 });
        }

        log?.Invoke("searching");
        var truths = scenes.Select(s => s.Captions()[0]).ToList();
        var search = new List<ShowcaseSearch>();
        using (var retriever = Blip2Retriever.FromPretrained(retrievalDir))
        using (no_grad())
        using (var imageFeatures = retriever.EncodeImages(images))
        using (var textFeatures = retriever.EncodeTexts(truths))
        {
            using var probsTensor = retriever.ItmProbabilities(imageFeatures, textFeatures);                          // [images, texts]
            using var itcTensor = Blip2Retriever.ItcMatrix(imageFeatures.Embeds, textFeatures.Embeds);              // [images, texts]
            float[] probs = probsTensor.contiguous().data<float>().ToArray(), itc = itcTensor.contiguous().data<float>().ToArray();
            for (int t = 0; t < count; t++)
            {
                // The ITC ranking decides ties of ITM (equal probabilities); ITM decides the rest, as LAVIS's re-ranking does.
                int best = Enumerable.Range(0, count).OrderByDescending(i => probs[i * count + t]).ThenByDescending(i => itc[i * count + t]).First();
                search.Add(new ShowcaseSearch(truths[t], images[best], probs[best * count + t], best == t));
            }
        }

        var result = new List<ShowcaseScene>();
        for (int i = 0; i < count; i++)
        {
            var qa = questions.Select((q, k) => (q, k)).Where(x => x.q.Scene == i)
                .Select(x => new ShowcaseAnswer(x.q.Kind, x.q.Question, x.q.Answer, answers[x.k].Text.Trim(), DemoEvaluation.AnswerCorrect(answers[x.k].Text, x.q.Answer))).ToList();
            string caption = captions[i].Text.Trim();
            result.Add(new ShowcaseScene(images[i], scenes[i], truths[i], caption, DemoEvaluation.CaptionCorrect(caption, scenes[i].Objects), qa, search[i]));
        }
        Write(outDir, result);
        return result;
    }

    private static void Write(string outDir, List<ShowcaseScene> scenes)
    {
        var json = new JsonArray([.. scenes.Select(s => (JsonNode)new JsonObject
        {
            ["image"] = Path.GetFileName(s.Image), ["scene"] = s.Scene.ToJson(), ["truth"] = s.Truth, ["caption"] = s.Caption, ["caption_correct"] = s.CaptionCorrect,
            ["answers"] = new JsonArray([.. s.Answers.Select(a => (JsonNode)new JsonObject
            {
                ["kind"] = a.Kind, ["question"] = a.Question, ["expected"] = a.Expected, ["answer"] = a.Answer, ["correct"] = a.Correct,
            })]),
            ["search"] = new JsonObject { ["query"] = s.Search.Query, ["top_image"] = Path.GetFileName(s.Search.TopImage), ["itm_probability"] = s.Search.Probability, ["correct"] = s.Search.Correct },
        })]);
        File.WriteAllText(Path.Combine(outDir, "results.json"), json.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));

        string Mark(bool ok) => ok ? "✓" : "✗";
        var md = new List<string> { "# blip2 demo", "", "![scenes](grid.png)", "", "| scene | generated caption | | answers | search by its caption: top image |", "|---|---|---|---|---|" };
        foreach (var s in scenes)
        {
            string qa = string.Join("<br>", s.Answers.Select(a => $"{a.Question} → {a.Answer} {Mark(a.Correct)}"));
            md.Add($"| {Path.GetFileName(s.Image)} | {s.Caption} | {Mark(s.CaptionCorrect)} | {qa} | {Path.GetFileName(s.Search.TopImage)} ({s.Search.Probability:F2}) {Mark(s.Search.Correct)} |");
        }
        File.WriteAllLines(Path.Combine(outDir, "results.md"), md);
        DemoGrid.Write(Path.Combine(outDir, "grid.png"), [.. scenes.Select(s => DemoGrid.Scene(File.ReadAllBytes(s.Image), $"{Path.GetFileName(s.Image)}: {s.Caption}",
            s.CaptionCorrect, s.Answers.Select(a => (a.Question, a.Answer, a.Expected, a.Correct))))]);
    }
}
