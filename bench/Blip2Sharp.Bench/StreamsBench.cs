using System.Diagnostics;
using Blip2Sharp.Configuration;
using Blip2Sharp.Generation;
using Blip2Sharp.Modeling;
using static TorchSharp.torch;

namespace Blip2Sharp.Bench;

/// <summary>
/// Continuous batching on a real-size architecture with random weights: aggregate generated tokens per second with
/// 1, 4, 8 and 16 concurrent streams through one <see cref="ContinuousBatcher"/> (the server's engine), in one run and
/// in paired order (1, 4, 8, 16, 8, 4, 1: the machine's speed moves within minutes, so each count's figure is the mean
/// of its rounds). Every stream generates exactly the same number of tokens (no stop token). Reported per count: the
/// decoding rate of the steps where all streams decode together (tokens/s), the end-to-end rate including each
/// request's image prefix and prefill, and the time to first token (mean and worst).
/// </summary>
public static class StreamsBench
{
    public static Dictionary<string, object> Run(string configDir, int newTokens, bool int8, int[] counts)
    {
        var r = new Dictionary<string, object>();
        var config = Blip2Config.Load(configDir, new ConfigWarnings());
        r["config"] = Path.GetFileName(Path.TrimEndingDirectorySeparator(configDir));
        r["new_tokens_per_stream"] = newTokens;
        r["threads"] = get_num_threads();
        var sw = Stopwatch.StartNew();
        using var model = new Blip2ForConditionalGeneration(config, ModelOptions.Cpu);
        ModelInit.Randomize(model, 0);
        model.eval();
        r["build_random_s"] = Math.Round(sw.Elapsed.TotalSeconds, 1);
        if (int8) model.Opt!.QuantizeInt8();
        r["lm_weights"] = int8 ? "int8" : "float32";

        int q = config.NumQueryTokens;
        var ids = Enumerable.Repeat((long)(config.ImageTokenIndex ?? 0), config.ImageTokenIndex is null ? 0 : q)
            .Concat([2L]).Concat(Enumerable.Range(200, 10).Select(i => (long)i))
                .ToArray();    // <image> × Q, </s>, 10 prompt tokens
        using var inputIds = tensor(ids).unsqueeze(0);
        using var pixels = randn([1, 3, config.VisionConfig.ImageSize, config.VisionConfig.ImageSize],
            generator: new Generator(1));
        var options = new GenerationOptions { MaxNewTokens = newTokens, MinNewTokens = newTokens, EosTokenId = [] };

        using var batcher = new ContinuousBatcher(model, maxBatchRows: 16, maxQueue: 64);
        var steps = new List<BatchStep>();
        batcher.Stepped += s =>
        {
            lock (steps) steps.Add(s);
        };
        Round(batcher, pixels, inputIds, options with { MaxNewTokens = 4, MinNewTokens = 4 }, 1); // warm-up

        var rounds = new Dictionary<int, List<(double Decode, double EndToEnd, double TtftMean, double TtftMax)>>();
        foreach (int c in counts)
        {
            lock (steps) steps.Clear();
            var (wall, ttft) = Round(batcher, pixels, inputIds, options, c);
            List<BatchStep> all;
            lock (steps) all = [.. steps];
            // Steady decoding: the steps where no request was admitted and all c streams decoded together.
            var full = all.Where(s => s.Admitted == 0 && s.DecodedRows == c).ToList();
            double decode = full.Sum(s => s.DecodedRows) / full.Sum(s => s.Elapsed.TotalSeconds);
            double endToEnd = c * newTokens / wall.TotalSeconds;
            (rounds.TryGetValue(c, out var list) ? list : rounds[c] = [])
                .Add((decode, endToEnd, ttft.Average(), ttft.Max()));
            Console.Error.WriteLine($"{c,2} streams: decoding {decode:F2} tokens/s, end to end {endToEnd:F2} tokens/s, " +
                $"first token {ttft.Average():F2} s (worst {ttft.Max():F2} s)");
        }
        double one = rounds[1].Average(x => x.Decode);
        foreach (var (c, list) in rounds.OrderBy(p => p.Key))
        {
            r[$"streams{c}_decode_tokens_per_s"] = Math.Round(list.Average(x => x.Decode), 2);
            r[$"streams{c}_end_to_end_tokens_per_s"] = Math.Round(list.Average(x => x.EndToEnd), 2);
            r[$"streams{c}_ttft_mean_s"] = Math.Round(list.Average(x => x.TtftMean), 2);
            r[$"streams{c}_ttft_max_s"] = Math.Round(list.Average(x => x.TtftMax), 2);
            r[$"streams{c}_decode_speedup_vs_1"] = Math.Round(list.Average(x => x.Decode) / one, 2);
            r[$"streams{c}_rounds"] = list.Count;
        }
        r["peak_rss_gb"] = ModelBench.PeakRssGb();
        return r;
    }

    private static (TimeSpan Wall, List<double> Ttft) Round(ContinuousBatcher batcher, Tensor pixels, Tensor ids,
        GenerationOptions o, int count)
    {
        var sw = Stopwatch.StartNew();
        var jobs = Enumerable.Range(0, count).Select(_ => batcher.Submit(pixels, ids, null, o)).ToList();
        Task.WhenAll(jobs.Select(j => j.Completion)).GetAwaiter().GetResult();
        return (sw.Elapsed, [.. jobs.Select(j => j.TimeToFirstToken!.Value.TotalSeconds)]);
    }
}
