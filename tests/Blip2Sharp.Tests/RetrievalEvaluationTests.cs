using System.Text.Json.Nodes;
using Blip2Sharp.Tasks;
using Xunit;

namespace Blip2Sharp.Tests;

public class RetrievalEvaluationTests
{
    [Fact]
    public void RecallCountsTheBestRankedGroundTruth()
    {
        // 3 queries × 4 candidates. Query 0: truth {1} ranks 1st. Query 1: truth {0, 3}: best is 3 with 2 above it → rank 2.
        // Query 2: truth {2} has every other candidate above it → rank 3.
        var s = new float[,] { { 0.1f, 0.9f, 0.2f, 0.3f }, { 0.2f, 0.8f, 0.9f, 0.5f }, { 0.5f, 0.6f, 0.1f, 0.7f } };
        var truth = new[] { new[] { 1 }, new[] { 0, 3 }, new[] { 2 } };
        var (r1, r5, r10) = RetrievalEvaluation.Recall(s, q => truth[q]);
        Assert.Equal(1.0 / 3, r1, 10);
        Assert.Equal(1.0, r5, 10);
        Assert.Equal(1.0, r10, 10);
        var (k1, _, _) = RetrievalEvaluation.Recall(new float[,] { { 0.5f, 0.5f } }, _ => [1]); // ties count in the query's favour
        Assert.Equal(1.0, k1);
    }

    [Fact]
    public void EvalRetrievalRunsOnAnnotatedFiles()
    {
        string dir = Fixtures.TempDir();
        var lines = new List<string>();
        var imgs = Fixtures.Manifest("tiny-itm")["images"]!.AsArray().Select(p => Path.Combine(Fixtures.Dir("tiny-itm"), (string)p!)).ToList();
        for (int i = 0; i < 6; i++)
        {
            string name = $"img{i}.png";
            File.Copy(imgs[i % 2], Path.Combine(dir, name));
            lines.Add(new JsonObject { ["image"] = name, ["caption"] = new JsonArray($"picture number {i}", $"another caption {i}") }.ToJsonString());
        }
        File.WriteAllLines(Path.Combine(dir, "data.jsonl"), lines);
        var r = CliRunner.Run("eval", "retrieval", "--data", Path.Combine(dir, "data.jsonl"), "--model", Fixtures.Dir("tiny-itm"), "--json", "--k-test", "4");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var j = JsonNode.Parse(r.Stdout)!;
        Assert.Equal(6, (int)j["images"]!);
        Assert.Equal(12, (int)j["texts"]!);
        foreach (var dirName in new[] { "i2t", "t2i" })
        {
            double a = (double)j[$"{dirName}_r1"]!, b = (double)j[$"{dirName}_r5"]!, c = (double)j[$"{dirName}_r10"]!;
            Assert.True(0 <= a && a <= b && b <= c && c <= 1, $"{dirName}: {a} {b} {c}");
        }
        // With 6 images every image is within the top 10: text→image R@10 is 1.
        Assert.Equal(1.0, (double)j["t2i_r10"]!);
    }

    [Fact]
    public void AMalformedAnnotationLineIsNamed()
    {
        string f = Path.Combine(Fixtures.TempDir(), "bad.jsonl");
        File.WriteAllLines(f, ["{\"image\": \"a.png\", \"caption\": \"x\"}", "{\"image\": \"b.png\"}"]);
        var e = Assert.Throws<InvalidConfigException>(() => RetrievalEvaluation.Load(f));
        Assert.Contains("bad.jsonl:2", e.Message);
    }
}
