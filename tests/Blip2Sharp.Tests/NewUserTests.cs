using System.Text.Json.Nodes;
using Xunit;

namespace Blip2Sharp.Tests;

/// <summary>What a new user hit, each reproduced through the `blip2` command as they ran it.</summary>
public class NewUserTests
{
    public static TheoryData<string> Commands() => new()
    {
        "caption", "ask", "chat", "tokenize", "match", "embed", "index", "search", "train stage1", "train stage2",
        "demo", "demo data", "demo train", "demo eval", "eval retrieval", "eval vqa", "dump", "inspect", "preprocess",
    };

    [Theory]
    [MemberData(nameof(Commands))]
    public void EveryCommandExplainsItselfAndShowsItsDefaults(string command)
    {
        var r = CliRunner.Run([.. command.Split(' '), "--help"]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("USAGE", r.Stdout);
        Assert.Equal("", r.Stderr);
    }

    [Fact]
    public void HelpShowsDefaultValues()
    {
        var index = CliRunner.Run("index", "--help").Stdout;
        Assert.Contains("DEFAULT", index);
        Assert.Matches(@"--batch-size <N>\s+16", index);
        Assert.Contains("default 20; ask: 10, chat: 30", CliRunner.Run("caption", "--help").Stdout.ReplaceLineEndings(" ")
            .Replace("  ", " "));
    }

    private static string Image(int i) =>
        Path.Combine(Fixtures.Dir("tiny-itm"), (string)Fixtures.Manifest("tiny-itm")["images"]![i]!);

    [Fact]
    public void EvalRetrievalGroupsOneLinePerCaptionByImage()
    {
        // Two images, three captions each, one caption a line (as `demo data` writes): 2 images, 6 texts.
        string dir = Fixtures.TempDir();
        var lines = new List<string>();
        for (int i = 0; i < 2; i++)
        {
            File.Copy(Image(i), Path.Combine(dir, $"{i}.png"));
            foreach (var c in new[] { "a photo", "a picture", "an image" })
                lines.Add(new JsonObject { ["image"] = $"{i}.png", ["caption"] = $"{c} number {i}" }.ToJsonString());
        }
        File.WriteAllLines(Path.Combine(dir, "data.jsonl"), lines);
        var r = CliRunner.Run("eval", "retrieval", "--data", Path.Combine(dir, "data.jsonl"), "--model", Fixtures.Dir("tiny-itm"), "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var j = JsonNode.Parse(r.Stdout)!;
        Assert.Equal(2, (int)j["images"]!);
        Assert.Equal(6, (int)j["texts"]!);
        Assert.Equal(1.0, (double)j["i2t_r5"]!);                      // 6 candidates: every image's captions in the top 5
    }

    [Fact]
    public void ChatGoesOnWhenTheConversationOutgrowsTheContext()
    {
        // tiny-opt has 64 positions: 8 image tokens + max_new_tokens 4 leave 52 for the prompt. A question of 60
        // words is refused and the chat goes on; a long run of short turns leaves its oldest turns out.
        string longQuestion = string.Join(" ", Enumerable.Repeat("cat", 60));
        var input = new List<string> { "what is it?", longQuestion, "and then?" };
        input.AddRange(Enumerable.Range(0, 8).Select(i => $"what about the part number {i}?"));
        var r = CliRunner.RunWithInput(string.Join("\n", input) + "\n\n", "chat", Image(0), "--model", Fixtures.Dir("tiny-opt"),
            "--max-new-tokens", "4", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var turns = r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal(input.Count - 1, turns.Count);                       // every question answered but the long one
        Assert.Contains("exceeds the language model's 64 positions", r.Stderr);
        Assert.Equal("and then?", (string)turns[1]["question"]!);
        Assert.True((int)turns[^1]["turns_left_out"]! > 0, r.Stdout);
    }

    [Fact]
    public void IndexRefusesAMissingFolderAndCreatesNothing()
    {
        string missing = Path.Combine(Fixtures.TempDir(), "photoss");
        string db = Path.Combine(Fixtures.TempDir(), "x.db");
        var r = CliRunner.Run("index", missing, "--model", Fixtures.Dir("tiny-itm"), "--db", db);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("folder not found", r.Stderr);
        Assert.False(Directory.Exists(missing));
        Assert.False(File.Exists(db));
    }

    [Fact]
    public void SearchShowsCosinesOfAtMostOneAndRefusesReRankingAnImageQuery()
    {
        string folder = Fixtures.TempDir();
        for (int i = 0; i < 2; i++) File.Copy(Image(i), Path.Combine(folder, $"{i}.png"));
        string db = Path.Combine(Fixtures.TempDir(), "index.db");
        var index = CliRunner.Run("index", folder, "--model", Fixtures.Dir("tiny-itm"), "--db", db, "--json");
        Assert.True(index.ExitCode == 0, index.Stderr);
        Assert.Equal(2, (int)JsonNode.Parse(index.Stdout)!["added"]!);
        var r = CliRunner.Run("search", "--image", Path.Combine(folder, "0.png"), "--db", db, "--model", Fixtures.Dir("tiny-itm"), "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var scores = JsonNode.Parse(r.Stdout)!["results"]!.AsArray().Select(h => (double)h!["score"]!).ToList();
        Assert.Equal(2, scores.Count);
        Assert.All(scores, s => Assert.InRange(s, -1.0, 1.0));
        Assert.Equal(1.0, scores[0], 2);                                 // the image itself
        var rerank = CliRunner.Run("search", "--image", Path.Combine(folder, "0.png"), "--db", db, "--model", Fixtures.Dir("tiny-itm"),
            "--rerank", "10");
        Assert.Equal(2, rerank.ExitCode);
        Assert.Contains("--rerank applies to text queries", rerank.Stderr);
    }

    [Fact]
    public void EveryCommandTreatsImagesByOneRule()
    {
        string folder = Fixtures.TempDir();
        for (int i = 0; i < 2; i++) File.Copy(Image(i), Path.Combine(folder, $"{i}.png"));
        string bad = Path.Combine(folder, "broken.png");
        // Folders work everywhere (match took only files).
        var match = CliRunner.Run("match", "--model", Fixtures.Dir("tiny-itm"), "--image", folder, "--text", "a cat", "--json");
        Assert.True(match.ExitCode == 0, match.Stderr);
        Assert.Equal(2, JsonNode.Parse(match.Stdout)!["images"]!.AsArray().Count);
        File.WriteAllText(bad, "not a png");
        // Per-image commands: the readable images are processed, the bad one is an error, exit 1.
        var caption = CliRunner.Run("caption", folder, "--model", Fixtures.Dir("tiny-opt"), "--max-new-tokens", "3", "--json");
        Assert.Equal(1, caption.ExitCode);
        Assert.Contains("blip2: error: ", caption.Stderr);
        Assert.Contains("broken.png", caption.Stderr);
        Assert.Equal(2, JsonNode.Parse(caption.Stdout)!["results"]!.AsArray().Count(x => x!["error"] is null));
        // Stacked or paired outputs: the bad image is named, nothing is written, exit 1.
        string outFile = Path.Combine(Fixtures.TempDir(), "e.safetensors");
        foreach (var args in new[]
        {
            new[] { "embed", "--model", Fixtures.Dir("tiny-itm"), "--image", folder, "--out", outFile },
            ["match", "--model", Fixtures.Dir("tiny-itm"), "--image", folder, "--text", "a cat"],
            ["preprocess", folder, "--size", "32", "--out", outFile],
        })
        {
            var r = CliRunner.Run(args);
            Assert.True(r.ExitCode == 1, $"{args[0]}: {r.ExitCode} {r.Stderr}");
            Assert.Contains("broken.png", r.Stderr);
            Assert.Contains("nothing was written", r.Stderr);
            Assert.False(File.Exists(outFile), args[0]);
        }
    }

    [Fact]
    public void AModelFileOrANonNumberIsExplained()
    {
        string image = Image(0);
        var file = CliRunner.Run("caption", image, "--model", Path.Combine(Fixtures.Dir("tiny-opt"), "model.safetensors"));
        Assert.Equal(1, file.ExitCode);
        Assert.Contains("is a file, not a checkpoint folder", file.Stderr);
        var config = CliRunner.Run("caption", image, "--model", Path.Combine(Fixtures.Dir("tiny-opt"), "config.json"));
        Assert.Equal(1, config.ExitCode);
        Assert.Contains("is a file, not a checkpoint folder", config.Stderr);
        var beams = CliRunner.Run("caption", image, "--num-beams", "abc");
        Assert.Equal(2, beams.ExitCode);
        Assert.Contains("--num-beams takes a number", beams.Stderr);
        Assert.DoesNotContain("Nullable", beams.Stderr);
    }
}
