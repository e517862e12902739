using System.Text.Json.Nodes;
using Blip2Sharp.Demo;
using Xunit;

namespace Blip2Sharp.Tests;

/// <summary>The demo model that ships with the project (models/blip2-demo) is every command's default --model.</summary>
public class ShippedDemoModelTests
{
    /// <summary>The copy next to the blip2 command that the tests run.</summary>
    private static readonly string ModelDir = Path.Combine(AppContext.BaseDirectory, "models", "blip2-demo");
    private static readonly Scene TwoObjects = new("white", [new SceneObject(Shape.Circle, "red", true, 0, 1), new SceneObject(Shape.Square, "blue", false, 2, 0)]);

    private static string Render(Scene scene)
    {
        string path = Path.Combine(Fixtures.TempDir(), "scene.png");
        File.WriteAllBytes(path, scene.RenderPng(96));
        return path;
    }

    [Fact]
    public void CaptionWithoutModelUsesTheDemoModel()
    {
        var r = CliRunner.Run("caption", Render(TwoObjects), "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("built-in demo model", r.Stderr);
        string caption = (string)JsonNode.Parse(r.Stdout)!["results"]!.AsArray()[0]!["text"]!;
        // Every object with its size, colour, shape and place, and the background.
        Assert.True(DemoEvaluation.CaptionCorrect(caption, TwoObjects.Objects), caption);
        Assert.Contains("white background", caption);
    }

    [Fact]
    public void MatchWithoutModelPrefersTheTrueCaption()
    {
        var r = CliRunner.Run("match", "--image", Render(TwoObjects), "--text", TwoObjects.Captions()[0],
            "--text", "a large red circle on the left and a large blue square on the right, on a white background", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var probs = JsonNode.Parse(r.Stdout)!["itm"]!.AsArray()[0]!.AsArray().Select(x => (double)x!).ToArray();
        Assert.True(probs[0] > probs[1], $"true caption {probs[0]:F3}, wrong size {probs[1]:F3}");
    }

    [Fact]
    public void TheShippedModelMeetsTheCaptionVqaAndRetrievalBarsOnAFreshSplit()
    {
        // A small split keeps the test quick; the report and the issue hold the 1,000-scene figures.
        var r = CliRunner.Run("demo", "eval", "--scenes", "150", "--holdout-scenes", "0", "--seed", "31", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var j = JsonNode.Parse(r.Stdout)!;
        Assert.True((double)j["caption_accuracy"]! >= 0.9, r.Stdout);
        // Zero-shot VQA: the bar, scored exactly (see README for the 1,000-scene figures), on scenes that share
        // no caption-level key with the model's training scenes (train_keys.txt).
        Assert.True((double)j["vqa_accuracy"]! >= 0.8, r.Stdout);
        Assert.True((double)j["retrieval_t2i_r1"]! >= 0.8, r.Stdout);
        Assert.True((double)j["retrieval_i2t_r1"]! >= 0.8, r.Stdout);
        Assert.Equal(150, (int)j["test_images"]!);
        Assert.True((int)j["excluded_training_keys"]! > 1000, r.Stdout);
        Assert.Equal(File.ReadLines(Path.Combine(ModelDir, "train_keys.txt")).Count(), (int)j["excluded_training_keys"]!);
        // Scenes rendered at the model's own input size, as in training (they were once rendered at 64 px and upscaled).
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(ModelDir, "generation", "config.json")))!;
        Assert.Equal((int)config["vision_config"]!["image_size"]!, (int)j["image_size"]!);
    }
}
