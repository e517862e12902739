using Blip2Sharp.Demo;
using Blip2Sharp.Generation;
using Blip2Sharp.Tasks;
using Blip2Sharp.Training;
using Xunit;

namespace Blip2Sharp.Tests;

public class DemoPipelineTests
{
    [Fact]
    public void TheWholeMethodRunsEndToEndAtToyScale()
    {
        string work = Fixtures.TempDir();
        var o = new DemoPipeline.Options
        {
            Seed = 3, TrainScenes = 24, ValScenes = 4, TestScenes = 4, ImageSize = 32,
            Vision = new VisionPretraining.Options { ImageSize = 32, PatchSize = 8, HiddenSize = 32, Layers = 1, Heads = 2, MlpSize = 64, Steps = 5, BatchSize = 8 },
            Text = new TextPretraining.Options { HiddenSize = 32, Layers = 1, Heads = 2, FfnDim = 64, Steps = 5, BatchSize = 8 },
            QFormerHidden = 32, QFormerLayers = 1, QFormerHeads = 2, Queries = 4,
            Stage1 = new TrainConfig { MaxSteps = 4, BatchSize = 4, WarmupSteps = 0, SaveEvery = 4, LogEvery = 2 },
            Stage2 = new TrainConfig { MaxSteps = 4, BatchSize = 4, WarmupSteps = 0, SaveEvery = 4, LogEvery = 2 },
        };
        var log = new List<string>();
        var (retrieval, generation) = DemoPipeline.Run(work, o, log.Add);
        Assert.Contains(log, l => l.StartsWith("language model loss"));
        Assert.Contains(log, l => l.StartsWith("image encoder loss"));
        Assert.True(File.Exists(Path.Combine(work, "stage1", "metrics.csv")));

        string image = Path.Combine(work, "data", "images", "test", "000000.png");
        using var pipeline = Blip2Pipeline.FromPretrained(generation);
        var caption = pipeline.Run([image], [""], new GenerationOptions { MaxNewTokens = 6 })[0];
        Assert.NotNull(caption.Text);
        Assert.InRange(caption.Sequences[0].GeneratedIds.Count, 1, 6);
        using var retriever = Blip2Retriever.FromPretrained(retrieval);
        using var images = retriever.EncodeImages([image]);
        using var texts = retriever.EncodeTexts(["a red circle", "a blue square"]);
        Assert.Equal(new long[] { 1, 2 }, retriever.ItmProbabilities(images, texts).shape);

        var eval = CliRunner.Run("demo", "eval", "--model", work, "--scenes", "6", "--seed", "4", "--json");
        Assert.True(eval.ExitCode == 0, eval.Stderr);
        var j = System.Text.Json.Nodes.JsonNode.Parse(eval.Stdout)!;
        foreach (var k in new[] { "caption_accuracy", "vqa_accuracy", "retrieval_t2i_r1", "retrieval_i2t_r1" })
            Assert.InRange((double)j[k]!, 0.0, 1.0);
        Assert.Equal(6, (int)j["test_images"]!);
    }

    [Fact]
    public void CaptionsAndAnswersAreJudgedExactly()
    {
        var objects = new[] { new SceneObject(Shape.Circle, "red", true, 0, 0), new SceneObject(Shape.Square, "blue", false, 2, 1) };
        Assert.True(DemoEvaluation.CaptionCorrect("a large red circle to the left of a small blue square", objects));
        Assert.False(DemoEvaluation.CaptionCorrect("a large red circle to the left of a large blue square", objects));     // wrong size
        Assert.False(DemoEvaluation.CaptionCorrect("a large red circle, a small blue square and a green triangle", objects)); // an extra object
        Assert.True(DemoEvaluation.AnswerCorrect("red", "red"));
        Assert.True(DemoEvaluation.AnswerCorrect(" Red.", "red"));
        Assert.False(DemoEvaluation.AnswerCorrect("blue", "red"));
        Assert.True(DemoEvaluation.AnswerCorrect("red circle", "red circle"));
    }
}
