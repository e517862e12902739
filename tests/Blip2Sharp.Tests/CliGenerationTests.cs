using System.Text.Json.Nodes;
using Xunit;

namespace Blip2Sharp.Tests;

public class CliGenerationTests
{
    public static TheoryData<string, string, int> Calls()
    {
        var d = new TheoryData<string, string, int>();
        foreach (var f in new[] { "tiny-opt", "tiny-t5" })
            foreach (var c in new[] { "gen_greedy_noprompt", "gen_greedy_prompt", "gen_beam", "gen_eos_override", "gen_min_new_tokens" })
                for (int i = 0; i < 2; i++) d.Add(f, c, i);
        return d;
    }

    [Theory]
    [MemberData(nameof(Calls))]
    public void CaptionJsonGivesTheGoldenIdsOneImageAtATime(string fixture, string call, int row)
    {
        var manifest = Fixtures.Manifest(fixture);
        var kw = manifest["calls"]!.AsArray().First(c => (string)c!["name"]! == call)!["kwargs"];
        string image = Path.Combine(Fixtures.Dir(fixture), (string)manifest["images"]![row]!);
        var args = new List<string> { "caption", image, "--model", Fixtures.Dir(fixture), "--json", "--max-new-tokens", kw?["max_new_tokens"]?.ToString() ?? "12" };
        if (call != "gen_greedy_noprompt") args.AddRange(["--prompt", (string)manifest["prompts"]![row]!]);
        if (kw?["num_beams"] is { } nb) args.AddRange(["--num-beams", nb.ToString(), "--length-penalty", kw["length_penalty"]!.ToString(), "--no-repeat-ngram-size", kw["no_repeat_ngram_size"]!.ToString()]);
        if (kw?["eos_token_id"] is { } eos) args.AddRange(["--eos-token-id", eos.ToString()]);
        if (kw?["min_new_tokens"] is { } mn) args.AddRange(["--min-new-tokens", mn.ToString()]);
        var r = CliRunner.Run([.. args]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        var ids = JsonNode.Parse(r.Stdout)!["results"]![0]!["sequences"]![0]!["generated_ids"]!.AsArray().Select(x => (long)x!).ToList();

        // Golden row: [BOS or decoder start] + new tokens, right-padded with the pad id.
        var goldens = Fixtures.Goldens(fixture);
        var golden = goldens[call][row].data<long>().ToArray().Skip(1).ToList();
        bool paddedRow = call != "gen_greedy_noprompt" && goldens["gen_attention_mask"][row].sum().item<long>() < goldens["gen_attention_mask"].shape[1];
        if (fixture == "tiny-t5" && paddedRow)
        {
            // The reference padded this row in the middle (between the <image> tokens and the prompt). T5's relative
            // position bias sees that padding, so a lone unpadded row legitimately differs from the batch golden
            // (GenerationTests reproduces the golden from the padded input). No golden holds the lone row: compare
            // with the independent reference decoding of it.
            var single = GenerationReferenceTests.NaiveRow(fixture, row, GenerationTests.OptionsOf(manifest, call));
            Assert.Equal(single.Select(x => (long)x), ids);
            return;
        }
        var config = Configuration.Blip2Config.Load(Fixtures.Dir(fixture), new Configuration.ConfigWarnings());
        long pad = config.TextConfig.PadTokenId!.Value;
        var eosIds = kw?["eos_token_id"] is { } e ? new[] { (long)e } : config.TextConfig.EosTokenId!.Select(x => (long)x).ToArray();
        int stop = golden.FindIndex(t => eosIds.Contains(t));
        var expected = stop >= 0 ? golden.Take(stop + 1).ToList() : golden;
        if (stop < 0) while (expected.Count > 0 && expected[^1] == pad && expected.Count > ids.Count) expected.RemoveAt(expected.Count - 1);
        Assert.Equal(expected, ids);
    }

    public static TheoryData<string> TokenizerFolders() => new() { "opt", "t5", "bert", "qformer", "opt_blip2", "t5_blip2", "qformer_blip2" };

    [Theory]
    [MemberData(nameof(TokenizerFolders))]
    public void TokenizeJsonGivesTheGoldenIdsAndDecoding(string name)
    {
        var strings = Fixtures.Manifest("tokenizers")["tokenizers"]![name]!["strings"]!.AsArray();
        var texts = strings.Select(s => (string)s!["text"]!).ToList();
        var r = CliRunner.Run(["tokenize", "--model", Path.Combine(Fixtures.Dir("tokenizers"), name), "--json", .. texts]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        var results = JsonNode.Parse(r.Stdout)!["results"]!.AsArray();
        Assert.Equal(texts.Count, results.Count);
        for (int i = 0; i < texts.Count; i++)
        {
            Assert.Equal(texts[i], (string)results[i]!["text"]!);
            Assert.Equal(strings[i]!["ids"]!.AsArray().Select(x => (int)x!), results[i]!["ids"]!.AsArray().Select(x => (int)x!));
            Assert.Equal(strings[i]!["tokens"]!.AsArray().Select(x => (string)x!), results[i]!["tokens"]!.AsArray().Select(x => (string)x!));
            Assert.Equal((string)strings[i]!["decode_skip_special"]!, (string)results[i]!["decoded"]!);
        }
    }

    [Fact]
    public void ABadImageInABatchIsReportedAndTheOthersProcessed()
    {
        string bad = Path.Combine(Fixtures.TempDir(), "broken.png");
        File.WriteAllText(bad, "not a png");
        string good = Path.Combine(Fixtures.Dir("tiny-opt"), "images", "img0_RGB_40x30.png");
        var r = CliRunner.Run("caption", bad, good, "--model", Fixtures.Dir("tiny-opt"), "--max-new-tokens", "4", "--batch-size", "2", "--json");
        Assert.Equal(1, r.ExitCode);                                    // the README's image rule: processed, and exit 1
        var results = JsonNode.Parse(r.Stdout)!["results"]!.AsArray();
        Assert.Equal(2, results.Count);
        Assert.Contains(results, x => (string?)x!["image"] == good && x["text"] is not null);
        Assert.Contains(results, x => (string?)x!["image"] == bad && ((string)x["error"]!).Contains("not an image"));
        Assert.Contains("broken.png", r.Stderr);
    }

    [Theory]
    [InlineData("--num-beams", "0", "num_beams")]
    [InlineData("--top-p", "2", "top_p")]
    [InlineData("--temperature", "-1", "temperature")]
    public void InvalidFlagsAreOneLineErrors(string flag, string value, string word)
    {
        var r = CliRunner.Run("caption", "x.png", "--model", Fixtures.Dir("tiny-opt"), flag, value, "--sample");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(word, r.Stderr);
        Assert.Single(r.Stderr.Trim().Split('\n'));
    }

    [Fact]
    public void AnEmptyQuestionIsRefused()
    {
        var r = CliRunner.Run("ask", Path.Combine(Fixtures.Dir("tiny-opt"), "images", "img0_RGB_40x30.png"), " ", "--model", Fixtures.Dir("tiny-opt"));
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("question is empty", r.Stderr);
    }
}
