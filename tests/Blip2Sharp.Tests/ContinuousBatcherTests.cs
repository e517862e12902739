using Blip2Sharp.Demo;
using Blip2Sharp.Generation;
using Blip2Sharp.Processing;
using Blip2Sharp.Tasks;
using Xunit;
using static TorchSharp.torch;

namespace Blip2Sharp.Tests;

/// <summary>
/// Continuous batching on the shipped demo model: every request's tokens equal what the one-at-a-time generator
/// (the path of `blip2 caption` / `blip2 ask`, itself checked against the goldens) gives for it alone.
/// </summary>
public class ContinuousBatcherTests : IClassFixture<ContinuousBatcherTests.DemoModel>
{
    public sealed class DemoModel : IDisposable
    {
        public Blip2Pipeline Pipeline { get; } = Blip2Pipeline.FromPretrained(
            Path.Combine(AppContext.BaseDirectory, "models", "blip2-demo", "generation"));

        public void Dispose() => Pipeline.Dispose();
    }

    private readonly Blip2Pipeline _p;

    public ContinuousBatcherTests(DemoModel model) => _p = model.Pipeline;

    private Tensor Pixels(int seed)
    {
        var scene = Scene.Random(new Random(seed));
        var image = ImageDecoder.Decode(scene.RenderPng(96), $"scene{seed}.png");
        return _p.Processor.ImageProcessor.Preprocess([image]).DetachFromDisposeScope();
    }

    private (Tensor Ids, Tensor Mask) Prompt(string prompt)
    {
        var (ids, mask) = _p.Processor.EncodePrompts([prompt], padLeft: true);
        return (ids.DetachFromDisposeScope(), mask.DetachFromDisposeScope());
    }

    /// <summary>Caption, VQA beam search, seeded sampling with two sequences, a repetition penalty, short
    /// limits.</summary>
    private static readonly (string Prompt, GenerationOptions Options)[] Mix =
    [
        ("", new GenerationOptions { MaxNewTokens = 30 }),
        ("Question: how many shapes are there? Answer:", GenerationOptions.Vqa),
        ("", new GenerationOptions { DoSample = true, Seed = 7, NumReturnSequences = 2, TopP = 0.9,
            MaxNewTokens = 20 }),
        ("Question: what colour is the background? Answer:",
            new GenerationOptions { MaxNewTokens = 5, RepetitionPenalty = 1.3 }),
        ("a photo of", new GenerationOptions { NumBeams = 3, NumReturnSequences = 2, MaxNewTokens = 12 }),
        ("", new GenerationOptions { MaxNewTokens = 1 }),
    ];

    private List<List<GeneratedSequence>> Alone(Tensor pixels, string prompt, GenerationOptions o)
    {
        var (ids, mask) = Prompt(prompt);
        return _p.Generator.Generate(pixels, ids, mask, o);
    }

    [Fact]
    public async Task ConcurrentRequestsGetTheirOneAtATimeTokens()
    {
        var requests = Enumerable.Range(0, 12).Select(i => (Pixels: Pixels(100 + i), Mix[i % Mix.Length])).ToList();
        var expected = requests.Select(r => Alone(r.Pixels, r.Item2.Prompt, r.Item2.Options)[0]).ToList();
        using var batcher = new ContinuousBatcher(_p.Model, maxBatchRows: 9);
        int mostRows = 0;
        batcher.Stepped += s => mostRows = Math.Max(mostRows, s.DecodedRows);
        var jobs = requests.Select(r =>
        {
            var (ids, mask) = Prompt(r.Item2.Prompt);
            return batcher.Submit(r.Pixels, ids, mask, r.Item2.Options);
        }).ToList();
        var results = await Task.WhenAll(jobs.Select(j => j.Completion));
        for (int i = 0; i < requests.Count; i++)
        {
            Assert.Equal(expected[i].Count, results[i].Count);
            for (int k = 0; k < expected[i].Count; k++)
            {
                Assert.Equal(expected[i][k].Tokens, results[i][k].Tokens);
                Assert.Equal(expected[i][k].Score, results[i][k].Score);
            }
        }
        Assert.True(mostRows > 1 && mostRows <= 9, $"at most {mostRows} rows in a step");
    }

    [Fact]
    public void AStackedStepComputesWhatEachStateComputesAlone()
    {
        using var scope = NewDisposeScope();
        using var noGrad = inference_mode();
        var lm = _p.Model.Opt!;
        OptDecoderState Start(int seed, string prompt, out Tensor first)
        {
            var (ids, mask) = Prompt(prompt);
            var (embeds, m) = _p.Model.MergeImagePrefix(_p.Model.ImagePrefix(Pixels(seed)), ids, mask);
            var state = new OptDecoderState(lm, embeds, m, 8);
            first = state.Next(null);
            return state;
        }
        // Different prompt lengths: the stacked step sees caches of different lengths.
        string[] prompts = ["", "Question: what shape is on the left? Answer:", "a"];
        var alone = prompts.Select((p, i) => Start(i, p, out _)).ToList();
        var stacked = prompts.Select((p, i) => Start(i, p, out _)).ToList();
        long[] tokens = [5, 9, 13];
        for (int step = 0; step < 3; step++)
        {
            var each = alone.Select((s, i) => s.Next(tensor(new[] { tokens[i] + step }))).ToList();
            var together = OptDecoderState.StepMany(lm, stacked, tensor(tokens.Select(t => t + step).ToArray()));
            for (int i = 0; i < prompts.Length; i++) Assert.Equal(0f, (each[i] - together.narrow(0, i, 1)).abs().max()
                .item<float>());
        }
        foreach (var s in alone.Concat(stacked)) s.Dispose();
    }

    [Fact]
    public async Task ACancelledRequestLeavesAndTheOthersFinish()
    {
        using var batcher = new ContinuousBatcher(_p.Model);
        using var cts = new CancellationTokenSource();
        var (ids, mask) = Prompt("");
        // No stop token: the long request runs its 200 steps unless cancelled.
        var longJob = batcher.Submit(Pixels(1), ids, mask,
            new GenerationOptions { MaxNewTokens = 200, EosTokenId = [] }, cts.Token);
        var shortJob = batcher.Submit(Pixels(2), ids, mask, new GenerationOptions { MaxNewTokens = 20 });
        await longJob.Tokens.ReadAsync();
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => longJob.Completion);
        var expected = Alone(Pixels(2), "", new GenerationOptions { MaxNewTokens = 20 })[0][0].Tokens;
        Assert.Equal(expected, (await shortJob.Completion)[0].Tokens);
        int streamed = 0;
        while (longJob.Tokens.TryRead(out _)) streamed++;
        Assert.True(streamed < 199, $"{streamed} tokens after cancelling");
    }

    [Fact]
    public void AFullQueueRefusesAtOnce()
    {
        using var batcher = new ContinuousBatcher(_p.Model, maxBatchRows: 1, maxQueue: 1);
        var (ids, mask) = Prompt("");
        var o = new GenerationOptions { MaxNewTokens = 200, EosTokenId = [] };
        using var cts = new CancellationTokenSource();
        var jobs = new List<GenerationJob>();
        var e = Assert.Throws<QueueFullException>(() =>
        {
            for (int i = 0; i < 10; i++) jobs.Add(batcher.Submit(Pixels(i), ids, mask, o, cts.Token));
        });
        Assert.Equal(1, e.Capacity);
        Assert.InRange(jobs.Count, 1, 2);                     // one may already be running, one waits
        cts.Cancel();
    }
}

/// <summary>Flan-T5 through the batcher: its requests step one by one (no stacked T5 step), with the same tokens.</summary>
public class ContinuousBatcherT5Tests
{
    [Fact]
    public async Task T5RequestsGetTheirOneAtATimeTokens()
    {
        using var p = Blip2Pipeline.FromPretrained(Fixtures.Dir("tiny-t5"));
        string image = Path.Combine(Fixtures.Dir("tiny-t5"), (string)Fixtures.Manifest("tiny-t5")["images"]![0]!);
        (string Prompt, GenerationOptions Options)[] cases =
        [
            ("", new GenerationOptions { MaxNewTokens = 6, EosTokenId = [] }),
            ("Question: what is it? Short answer:", new GenerationOptions { NumBeams = 3, MaxNewTokens = 5 }),
            ("a photo of", new GenerationOptions { DoSample = true, Seed = 3, MaxNewTokens = 6, NumReturnSequences = 2 }),
        ];
        using var scope = NewDisposeScope();
        var pixels = p.Processor.ImageProcessor.PreprocessFiles([image]);
        var expected = cases.Select(c =>
        {
            var (ids, mask) = p.Processor.EncodePrompts([c.Prompt], padLeft: false);
            return p.Generator.Generate(pixels, ids, mask, c.Options)[0];
        }).ToList();
        using var batcher = new ContinuousBatcher(p.Model);
        var jobs = cases.Select(c =>
        {
            var (ids, mask) = p.Processor.EncodePrompts([c.Prompt], padLeft: false);
            return batcher.Submit(pixels, ids, mask, c.Options);
        }).ToList();
        var results = await Task.WhenAll(jobs.Select(j => j.Completion));
        for (int i = 0; i < cases.Length; i++)
        {
            Assert.Equal(expected[i].Count, results[i].Count);
            for (int k = 0; k < expected[i].Count; k++) Assert.Equal(expected[i][k].Tokens, results[i][k].Tokens);
        }
    }
}
