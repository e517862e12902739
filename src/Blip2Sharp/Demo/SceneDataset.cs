using System.Text.Json.Nodes;

namespace Blip2Sharp.Demo;

/// <summary>
/// Writes a synthetic scene dataset: images/{split}/NNNNNN.png, {split}.jsonl with one line per caption
/// ({"image", "caption"}, the trainer's format), {split}_qa.jsonl ({"image", "question", "answer", "kind"}) and
/// {split}_scenes.jsonl (the scene itself, for exact evaluation). Deterministic for a seed. Validation and test scenes
/// are distinct (no two share a caption), so that a caption has exactly one right image in retrieval.
/// </summary>
public static class SceneDataset
{
    public static IReadOnlyDictionary<string, int> Write(string outDir, long seed, int train, int val, int test, int imageSize = 64, Action<int, int>? progress = null)
    {
        var counts = new Dictionary<string, int> { ["train"] = train, ["val"] = val, ["test"] = test };
        int total = train + val + test, done = 0;
        foreach (var (split, n) in counts)
        {
            string imgDir = Path.Combine(outDir, "images", split);
            Directory.CreateDirectory(imgDir);
            var rng = new Random(Training.Seeds.Mix(seed, Training.Seeds.Of(split), 17));
            using var captions = new StreamWriter(Path.Combine(outDir, $"{split}.jsonl"));
            using var qa = new StreamWriter(Path.Combine(outDir, $"{split}_qa.jsonl"));
            using var scenes = new StreamWriter(Path.Combine(outDir, $"{split}_scenes.jsonl"));
            var seen = new HashSet<string>();
            for (int i = 0; i < n; i++)
            {
                var scene = Scene.Random(rng);
                while (split != "train" && !seen.Add(scene.Key)) scene = Scene.Random(rng);
                string rel = $"images/{split}/{i:D6}.png";
                File.WriteAllBytes(Path.Combine(outDir, rel), scene.RenderPng(imageSize));
                foreach (var c in scene.Captions()) captions.WriteLine(new JsonObject { ["image"] = rel, ["caption"] = c }.ToJsonString());
                foreach (var (kind, q, a) in scene.Questions(rng))
                    qa.WriteLine(new JsonObject { ["image"] = rel, ["question"] = q, ["answer"] = a, ["kind"] = kind }.ToJsonString());
                var s = scene.ToJson();
                s["image"] = rel;
                scenes.WriteLine(s.ToJsonString());
                progress?.Invoke(++done, total);
            }
        }
        return counts;
    }
}
