using Blip2Sharp.Generation;
using Xunit;
using static TorchSharp.torch;

namespace Blip2Sharp.Tests;

/// <summary>Generation against <see cref="NaiveDecoding"/>, where the fixtures hold no golden.</summary>
public class GenerationReferenceTests
{
    private static (Tensor Pixels, long[] Ids) UnpaddedRow(string fixture, int row)
    {
        var x = Fixtures.Goldens(fixture);
        var keep = x["gen_attention_mask"][row].nonzero().squeeze(1);
        return (x["pixel_values"][row..(row + 1)], x["gen_input_ids"][row].index_select(0, keep).data<long>().ToArray());
    }

    private static List<List<int>> Library(string fixture, int row, GenerationOptions o)
    {
        var (pixels, ids) = UnpaddedRow(fixture, row);
        var gen = new Blip2Generator(GenerationTests.Model(fixture));
        return [.. gen.Generate(pixels, tensor(ids).unsqueeze(0), null, o)[0].Select(s => s.Tokens.ToList())];
    }

    /// <summary>The reference decoding of a golden row without its padding: the best sequence.</summary>
    internal static List<int> NaiveRow(string fixture, int row, GenerationOptions o) => Naive(fixture, row, o)[0];

    private static List<List<int>> Naive(string fixture, int row, GenerationOptions o)
    {
        var model = GenerationTests.Model(fixture);
        var (pixels, ids) = UnpaddedRow(fixture, row);
        var (embeds, mask) = NaiveDecoding.Prompt(model, pixels, ids);
        int[] eos = o.EosTokenId ?? model.Config.TextConfig.EosTokenId ?? [];
        IReadOnlyList<int> initial = model.Opt is null ? [model.Config.TextConfig.DecoderStartTokenId!.Value] : [];
        return o.NumBeams > 1 ? NaiveDecoding.Beam(model, embeds, mask, o, eos, initial)
            : [NaiveDecoding.Greedy(model, embeds, mask, o, eos, initial)];
    }

    [Theory]
    [InlineData("tiny-opt")]
    [InlineData("tiny-t5")]
    public void TheNaiveReferenceReproducesTheGoldenBeamSearch(string fixture)
    {
        // The reference implementation itself checked against a golden: row 1 of gen_beam has no padding.
        var manifest = Fixtures.Manifest(fixture);
        var kw = manifest["calls"]!.AsArray().First(c => (string)c!["name"]! == "gen_beam")!["kwargs"]!;
        var o = new GenerationOptions
        {
            NumBeams = (int)kw["num_beams"]!, LengthPenalty = (double)kw["length_penalty"]!,
            NoRepeatNgramSize = (int)kw["no_repeat_ngram_size"]!, MaxNewTokens = (int)kw["max_new_tokens"]!,
        };
        var golden = Fixtures.Goldens(fixture)["gen_beam"][1].data<long>().ToArray().Skip(1).Select(t => (int)t).ToList();
        var naive = Naive(fixture, 1, o)[0];
        var pad = GenerationTests.Model(fixture).Config.TextConfig.PadTokenId!.Value;
        Assert.Equal(golden.Take(naive.Count), naive);
        Assert.All(golden.Skip(naive.Count), t => Assert.Equal(pad, t));
    }

    [Theory]
    [InlineData("tiny-opt", EarlyStopping.Never, 1.0)]
    [InlineData("tiny-t5", EarlyStopping.Never, 0.6)]
    [InlineData("tiny-opt", EarlyStopping.WhenFull, 1.0)]
    [InlineData("tiny-t5", EarlyStopping.Heuristic, -1.0)]
    public void BeamSearchStopsAsTheReferenceForEachEarlyStopping(string fixture, EarlyStopping when, double lengthPenalty)
    {
        var o = new GenerationOptions { NumBeams = 3, NumReturnSequences = 3, MaxNewTokens = 10, LengthPenalty = lengthPenalty, EarlyStopping = when };
        for (int row = 0; row < 2; row++) Assert.Equal(Naive(fixture, row, o), Library(fixture, row, o));
    }

    [Theory]
    [InlineData("tiny-opt")]
    [InlineData("tiny-t5")]
    public void ABeamEndedByAnyStopIdEndsWithTheFirstOne(string fixture)
    {
        // Stop ids: one the model never picks, then tokens its beams do generate (the second and third of a beam
        // search without them), so that hypotheses end on a later id of the list and the reference writes the first.
        int endedOnAStopId = 0;
        for (int row = 0; row < 2; row++)
        {
            var o = new GenerationOptions { NumBeams = 3, NumReturnSequences = 3, MaxNewTokens = 8, EosTokenId = [] };
            var free = Naive(fixture, row, o)[0];
            int[] eos = [5, free[1], free[2]];
            o = o with { EosTokenId = eos };
            var library = Library(fixture, row, o);
            Assert.Equal(Naive(fixture, row, o), library);
            endedOnAStopId += library.Count(s => s[^1] == 5);
            Assert.DoesNotContain(library, s => s[^1] == eos[1] || s[^1] == eos[2]);
        }
        Assert.True(endedOnAStopId > 0, "no returned hypothesis ended on a stop id: the test would prove nothing");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void DecodingKeepsNoStepsTensorsAndDisposesItsLastLogits(int beams)
    {
        var x = Fixtures.Goldens("tiny-opt");
        var live = new List<long>();
        var gen = new Blip2Generator(GenerationTests.Model("tiny-opt"))
        {
            StepObserver = _ => live.Add(TorchSharp.DisposeScopeManager.Statistics.ThreadTotalLiveCount),
        };
        var o = new GenerationOptions { NumBeams = beams, MaxNewTokens = 12, EosTokenId = [] };
        using var pixels = x["pixel_values"].clone();
        using var ids = x["gen_input_ids"].clone();
        using var mask = x["gen_attention_mask"].clone();
        gen.Generate(pixels, ids, mask, o);                                   // warm-up: lazily made tensors
        long before = TorchSharp.DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        live.Clear();
        gen.Generate(pixels, ids, mask, o);
        Assert.Equal(before, TorchSharp.DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        Assert.Equal(12, live.Count);
        Assert.All(live.Skip(2), n => Assert.Equal(live[1], n));              // flat from the second step on
    }

    [Fact]
    public async Task AConsumerThatStopsReadingStopsTheGeneration()
    {
        var (pixels, ids) = UnpaddedRow("tiny-opt", 1);
        int steps = 0;
        var gen = new Blip2Generator(GenerationTests.Model("tiny-opt")) { StepObserver = s => Interlocked.Exchange(ref steps, s + 1) };
        var o = new GenerationOptions { MaxNewTokens = 2000, EosTokenId = [] };
        int read = 0;
        await foreach (var _ in gen.Stream(pixels, tensor(ids).unsqueeze(0), null, o))
            if (++read == 3) break;
        int atBreak = Volatile.Read(ref steps);
        await Task.Delay(300);
        Assert.Equal(atBreak, Volatile.Read(ref steps));                     // nothing runs after the loop is left
        Assert.True(atBreak < 100, $"{atBreak} steps were taken for 3 tokens read");
    }
}
