using System.Text.Json.Nodes;

namespace Blip2Sharp.Demo;

/// <summary>
/// Writes a synthetic scene dataset: images/{split}/NNNNNN.png, {split}.jsonl with one line per caption
/// ({"image", "caption"}, the trainer's format), {split}_qa.jsonl ({"image", "question", "answer", "kind"}),
/// {split}_scenes.jsonl (the scene itself, for exact evaluation) and train_keys.txt (the training scenes'
/// <see cref="Scene.Key"/>s, sorted). Deterministic for a seed. Validation and test scenes are distinct (no two share a
/// key, so a caption has exactly one right image in retrieval) and share no key with a training scene or with
/// <c>excludedKeys</c> (the training scenes of a model to evaluate). No split but "holdout" holds the held-out
/// colour-shape pair (<see cref="Scene.HeldOut"/>); every "holdout" scene holds it.
/// </summary>
public static class SceneDataset
{
    public sealed record Splits(int Train = 0, int Val = 0, int Test = 0, int Holdout = 0);

    public static IReadOnlyDictionary<string, int> Write(string outDir, long seed, Splits splits, int imageSize = 64,
        IReadOnlySet<string>? excludedKeys = null, Action<int, int>? progress = null)
    {
        var counts = new Dictionary<string, int>
        {
            ["train"] = splits.Train, ["val"] = splits.Val, ["test"] = splits.Test, ["holdout"] = splits.Holdout,
        };
        int total = counts.Values.Sum(), done = 0;
        var trainKeys = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var (split, n) in counts)
        {
            if (n == 0 && split is "holdout") continue;
            string imgDir = Path.Combine(outDir, "images", split);
            Directory.CreateDirectory(imgDir);
            var rng = new Random(Training.Seeds.Mix(seed, Training.Seeds.Of(split), 17));
            using var captions = new StreamWriter(Path.Combine(outDir, $"{split}.jsonl"));
            using var qa = new StreamWriter(Path.Combine(outDir, $"{split}_qa.jsonl"));
            using var scenes = new StreamWriter(Path.Combine(outDir, $"{split}_scenes.jsonl"));
            var seen = new HashSet<string>(StringComparer.Ordinal);
            bool Fresh(Scene s) => seen.Add(s.Key) && !trainKeys.Contains(s.Key) && excludedKeys?.Contains(s.Key) != true;
            Scene Draw() => split == "holdout" ? Scene.RandomHeldOut(rng) : Scene.Random(rng);
            for (int i = 0; i < n; i++)
            {
                var scene = Draw();
                if (split == "train") trainKeys.Add(scene.Key);
                else
                    for (int tries = 0; !Fresh(scene); tries++)
                    {
                        if (tries > 100_000)
                            throw new Blip2Exception($"cannot draw {n} {split} scenes unlike the training scenes: ask for fewer.");
                        scene = Draw();
                    }
                string rel = $"images/{split}/{i:D6}.png";
                File.WriteAllBytes(Path.Combine(outDir, rel), scene.RenderPng(imageSize));
                foreach (var c in scene.Captions())
                    captions.WriteLine(new JsonObject { ["image"] = rel, ["caption"] = c }.ToJsonString());
                foreach (var (kind, q, a) in scene.Questions(rng))
                    qa.WriteLine(new JsonObject { ["image"] = rel, ["question"] = q, ["answer"] = a, ["kind"] = kind }
                        .ToJsonString());
                var s = scene.ToJson();
                s["image"] = rel;
                scenes.WriteLine(s.ToJsonString());
                progress?.Invoke(++done, total);
            }
        }
        if (splits.Train > 0) File.WriteAllLines(Path.Combine(outDir, TrainKeysFile), trainKeys);
        return counts;
    }

    /// <summary>The file that lists the keys of the scenes a dataset, or a demo model, was trained on.</summary>
    public const string TrainKeysFile = "train_keys.txt";

    /// <summary>The keys of a *_scenes.jsonl file's scenes.</summary>
    public static IEnumerable<string> Keys(string scenesJsonl) =>
        File.ReadLines(scenesJsonl).Select(l => Scene.FromJson(JsonNode.Parse(l)!.AsObject()).Key);

    /// <summary>A train_keys.txt read back (one key a line).</summary>
    public static IReadOnlySet<string> ReadKeys(string file) =>
        new HashSet<string>(File.ReadLines(file).Where(l => l.Length > 0), StringComparer.Ordinal);
}
