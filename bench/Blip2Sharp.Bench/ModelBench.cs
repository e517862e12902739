using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Blip2Sharp.Configuration;
using Blip2Sharp.Generation;
using Blip2Sharp.Modeling;
using Blip2Sharp.Processing;
using static TorchSharp.torch;

namespace Blip2Sharp.Bench;

/// <summary>
/// Real-size benchmark of one architecture: build (random weights) or load (a saved folder), peak RSS, per-stage
/// times, tokens/s, images/s at batch 1, 4 and 8, and the fraction of this machine's measured limits reached.
/// </summary>
public static class ModelBench
{
    /// <summary>
    /// How the report is written: a rate over a time too short to measure (tiny configs) is infinite, which plain JSON
    /// cannot hold; it is written as the string "Infinity" (or "NaN") instead of stopping the run.
    /// </summary>
    public static readonly JsonSerializerOptions Json = new() { WriteIndented = true, NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals };

    public static Dictionary<string, object> Run(string configDir, string? checkpointDir, string image, int newTokens)
    {
        var r = new Dictionary<string, object>();
        var config = Blip2Config.Load(checkpointDir ?? configDir, new ConfigWarnings());
        r["config"] = Path.GetFileName(Path.TrimEndingDirectorySeparator(configDir));
        bool retrieval = config.Architectures?.Contains("Blip2ForImageTextRetrieval") == true;
        var v = config.VisionConfig;
        int size = v.ImageSize;
        var sw = Stopwatch.StartNew();
        double? peakGb = null;

        // Machine limits at this model's shapes, in the same run.
        long tokens = v.NumPatches + 1;
        r["gemm_gflops_vision_mlp_shape"] = Math.Round(MachineLimits.GemmGflops(tokens, v.HiddenSize, v.IntermediateSize), 1);
        r["gemm_gflops_vision_qkv_shape"] = Math.Round(MachineLimits.GemmGflops(tokens, v.HiddenSize, 3L * v.HiddenSize), 1);
        r["read_bandwidth_gbs"] = Math.Round(MachineLimits.StreamReadGbs(), 1);
        r["read_bandwidth_torch_sum_gbs"] = Math.Round(MachineLimits.ReadBandwidthGbs(), 1);

        nn.Module model;
        sw.Restart();
        if (retrieval)
        {
            var m = new Blip2ForImageTextRetrieval(config, ModelOptions.Cpu);
            ModelInit.Randomize(m, 0);
            model = m;
            r["build_random_s"] = Math.Round(sw.Elapsed.TotalSeconds, 1);
        }
        else if (checkpointDir is not null)
        {
            model = Blip2ForConditionalGeneration.FromPretrained(checkpointDir);
            r["load_from_safetensors_s"] = Math.Round(sw.Elapsed.TotalSeconds, 1);
        }
        else
        {
            var m = new Blip2ForConditionalGeneration(config, ModelOptions.Cpu);
            ModelInit.Randomize(m, 0);
            model = m;
            r["build_random_s"] = Math.Round(sw.Elapsed.TotalSeconds, 1);
        }
        model.eval();
        long parameters = model.parameters().Sum(p => p.numel());
        double weightsGb = parameters * 4 / 1e9;
        r["parameters"] = parameters;
        r["weights_gb"] = Math.Round(weightsGb, 2);

        var processor = new BlipImageProcessor(ImageProcessorConfig.ForSize(size));
        sw.Restart();
        using var pixels = processor.PreprocessFiles([image]);
        r["decode_and_preprocess_ms"] = Math.Round(sw.Elapsed.TotalMilliseconds, 1);

        double visionFlops = VisionFlops(v);
        using (inference_mode())
        {
            var vision = retrieval ? ((Blip2ForImageTextRetrieval)model).VisionModel : ((Blip2ForConditionalGeneration)model).VisionModel;
            using (vision.Forward(pixels)) { } // warm-up
            double visionS = Best(3, () => { using var o = vision.Forward(pixels); });
            r["vision_s"] = Math.Round(visionS, 3);
            r["vision_gflop"] = Math.Round(visionFlops / 1e9, 1);
            r["vision_gflops_achieved"] = Math.Round(visionFlops / visionS / 1e9, 1);
            // The GEMM rate again, right after the vision pass: one measurement at the start once came out at half the
            // machine's rate (94 against ~195 GFLOP/s, a busy minute on the shared machine), which made the vision
            // encoder look faster than the limit. The limit is the best of both.
            r["gemm_gflops_vision_mlp_shape_after"] = Math.Round(MachineLimits.GemmGflops(tokens, v.HiddenSize, v.IntermediateSize), 1);
            double gemm = new[] { "gemm_gflops_vision_mlp_shape", "gemm_gflops_vision_qkv_shape", "gemm_gflops_vision_mlp_shape_after" }.Max(k => (double)r[k]);
            r["vision_fraction_of_gemm_rate"] = Math.Round(visionFlops / visionS / 1e9 / gemm, 3);
            foreach (int b in new[] { 1, 4, 8 })
            {
                using var batch = pixels.expand(b, -1, -1, -1).contiguous();
                double s = Best(b == 1 ? 2 : 1, () => { using var o = vision.Forward(batch); });
                r[$"vision_images_per_s_batch{b}"] = Math.Round(b / s, 3);
            }

            if (model is Blip2ForConditionalGeneration gen)
            {
                using var visionOut = gen.VisionModel.Forward(pixels);
                double qformerS = Best(3, () =>
                {
                    using var q = gen.QFormer.Forward(gen.QueryTokens.expand(1, -1, -1), imageEmbeds: visionOut.LastHiddenState);
                });
                r["qformer_s"] = Math.Round(qformerS, 3);
                var generator = new Blip2Generator(gen);
                int q = config.NumQueryTokens;
                // <image> × Q + "</s>" + a 10-token prompt.
                var ids = Enumerable.Repeat((long)(config.ImageTokenIndex ?? 0), config.ImageTokenIndex is null ? 0 : q)
                    .Concat([gen.Opt is not null ? 2L : 100L]).Concat(Enumerable.Range(200, 10).Select(i => (long)i)).ToArray();
                using var inputIds = tensor(ids).unsqueeze(0);
                var options = new GenerationOptions { MaxNewTokens = newTokens, MinNewTokens = newTokens, EosTokenId = [] };
                var timings = new GenerationTimings();
                sw.Restart();
                generator.Generate(pixels, inputIds, null, options, timings: timings);
                double total = sw.Elapsed.TotalSeconds;
                r["prompt_tokens"] = ids.Length;
                r["llm_prefill_s"] = Math.Round(timings.PrefillMs / 1000, 3);
                r["per_token_s"] = Math.Round(SecondsPerToken(timings), 3);
                r["tokens_per_s"] = Math.Round(timings.Steps / (timings.DecodeMs / 1000), 2);
                r[$"caption_{newTokens}_tokens_end_to_end_s"] = Math.Round(total + (double)r["decode_and_preprocess_ms"] / 1000, 2);
                // Bytes streamed per generated token: all of OPT; for T5 the decoder and lm_head (the encoder runs once).
                double lmBytes = gen.Opt is not null
                    ? gen.Opt.parameters().Sum(p => p.numel()) * 4.0
                    : gen.T5!.named_parameters().Where(p => p.name.StartsWith("decoder.") || p.name.StartsWith("lm_head.")).Sum(p => p.parameter.numel()) * 4.0;
                r["llm_bytes_per_token_gb"] = Math.Round(lmBytes / 1e9, 2);
                r["decode_gbs_achieved"] = Math.Round(lmBytes / SecondsPerToken(timings) / 1e9, 1);
                r["decode_fraction_of_bandwidth"] = Math.Round((double)r["decode_gbs_achieved"] / (double)r["read_bandwidth_gbs"], 3);
                // Peak RSS of the float32 model, before the stream buffers of the paired rounds and the int8 copies.
                peakGb = PeakRssGb();
                PairedDecodeAndBandwidth(r, generator, pixels, inputIds, options, lmBytes);

                if (gen.Opt is { } opt)
                {
                    // Weight-only int8: speed per token and agreement of greedy ids with float32.
                    var greedy = new GenerationOptions { MaxNewTokens = newTokens, EosTokenId = [] };
                    var fp32Ids = generator.Generate(pixels, inputIds, null, greedy)[0][0].Tokens;
                    sw.Restart();
                    opt.QuantizeInt8();
                    r["int8_quantize_s"] = Math.Round(sw.Elapsed.TotalSeconds, 1);
                    var t8 = new GenerationTimings();
                    var int8Ids = generator.Generate(pixels, inputIds, null, greedy, timings: t8)[0][0].Tokens;
                    r["int8_per_token_s"] = Math.Round(SecondsPerToken(t8), 3);
                    r["int8_speedup_per_token"] = Math.Round((double)r["per_token_s"] / (double)r["int8_per_token_s"], 2);
                    // Paired: five rounds of 5 tokens in int8 then 5 in float32, each ratio from the same minute.
                    var ratios = new List<double>();
                    var pairs = new List<string>();
                    var five = greedy with { MaxNewTokens = 5, MinNewTokens = 5 };
                    for (int round = 0; round < 5; round++)
                    {
                        var ti = new GenerationTimings();
                        generator.Generate(pixels, inputIds, null, five, timings: ti);
                        opt.UseInt8 = false;
                        var tf = new GenerationTimings();
                        generator.Generate(pixels, inputIds, null, five, timings: tf);
                        opt.UseInt8 = true;
                        double si = SecondsPerToken(ti), sf = SecondsPerToken(tf);
                        ratios.Add(sf / si);
                        pairs.Add($"{sf:F3}/{si:F3}");
                    }
                    r["paired_fp32_int8_per_token_s"] = string.Join(" ", pairs);
                    r["int8_speedup_paired_median"] = Math.Round(Median(ratios), 2);
                    int agree = 0;
                    while (agree < Math.Min(fp32Ids.Count, int8Ids.Count) && fp32Ids[agree] == int8Ids[agree]) agree++;
                    r["int8_greedy_ids_equal_prefix"] = $"{agree}/{fp32Ids.Count}";
                    r["int8_greedy_ids_equal_positions"] = $"{fp32Ids.Zip(int8Ids).Count(p => p.First == p.Second)}/{fp32Ids.Count}";
                }
            }
            else if (model is Blip2ForImageTextRetrieval ret)
            {
                using var visionOut = ret.VisionModel.Forward(pixels);
                r["qformer_image_embeds_s"] = Math.Round(Best(3, () => { using var e = ret.ImageEmbeds(visionOut.LastHiddenState); }), 3);
                using var ids = tensor(Enumerable.Range(1000, 20).Select(i => (long)i).Prepend(101L).Append(102L).ToArray()).unsqueeze(0);
                using var mask = ones_like(ids);
                r["text_embed_s"] = Math.Round(Best(3, () => { using var t = ret.TextHidden(ids, mask); }), 3);
                r["itm_pair_s"] = Math.Round(Best(3, () => { using var i = ret.Itm(visionOut.LastHiddenState, ids, mask); }), 3);
            }
        }
        peakGb ??= PeakRssGb();
        r["peak_rss_gb"] = Math.Round(peakGb.Value, 2);
        r["peak_rss_over_weights"] = Math.Round(peakGb.Value / weightsGb, 3);
        model.Dispose();
        return r;
    }

    /// <summary>
    /// The machine is shared, and its read bandwidth moves by a third within minutes (44–78 GB/s over a day's runs):
    /// five rounds, each a bandwidth measurement (512 MiB, median of 3) then 5 generated tokens, so each fraction
    /// compares two figures taken seconds apart. Also the best bandwidth of the whole run against the best decoding.
    /// </summary>
    private static void PairedDecodeAndBandwidth(Dictionary<string, object> r, Blip2Generator generator, Tensor pixels, Tensor inputIds,
        GenerationOptions options, double lmBytes)
    {
        var streams = new List<double> { (double)r["read_bandwidth_gbs"] };
        var decodes = new List<double> { (double)r["decode_gbs_achieved"] };
        var fractions = new List<double>();
        var five = options with { MaxNewTokens = 5, MinNewTokens = 5 };
        for (int round = 0; round < 5; round++)
        {
            double stream = MachineLimits.StreamReadGbs(512L << 20, 3);
            var t = new GenerationTimings();
            generator.Generate(pixels, inputIds, null, five, timings: t);
            double decode = lmBytes / SecondsPerToken(t) / 1e9;
            streams.Add(stream);
            decodes.Add(decode);
            fractions.Add(decode / stream);
        }
        r["paired_read_bandwidth_gbs"] = string.Join(" ", streams.Skip(1).Select(x => x.ToString("F1")));
        r["paired_decode_gbs"] = string.Join(" ", decodes.Skip(1).Select(x => x.ToString("F1")));
        r["decode_fraction_of_bandwidth_paired_median"] = Math.Round(Median(fractions), 3);
        r["read_bandwidth_best_gbs"] = Math.Round(streams.Max(), 1);
        r["decode_best_gbs"] = Math.Round(decodes.Max(), 1);
        r["decode_best_fraction_of_best_bandwidth"] = Math.Round(decodes.Max() / streams.Max(), 3);
    }

    private static double SecondsPerToken(GenerationTimings t) => t.DecodeMs / 1000 / Math.Max(1, t.Steps);

    private static double Median(List<double> xs) => xs.Order().ElementAt(xs.Count / 2);

    private static double Best(int reps, Action body)
    {
        double best = double.MaxValue;
        for (int i = 0; i < reps; i++)
        {
            var sw = Stopwatch.StartNew();
            body();
            best = Math.Min(best, sw.Elapsed.TotalSeconds);
        }
        return best;
    }

    /// <summary>Multiply-adds × 2 of the ViT: patch conv, and per layer qkv, attention, projection, MLP.</summary>
    public static double VisionFlops(Blip2VisionConfig v)
    {
        double t = v.NumPatches + 1, d = v.HiddenSize, f = v.IntermediateSize;
        double patch = 2.0 * v.NumPatches * v.NumChannels * v.PatchSize * v.PatchSize * d;
        double layer = 2 * t * (3 * d * d + d * d + 2 * d * f) + 2 * 2 * t * t * d;
        return patch + v.NumHiddenLayers * layer;
    }

    public static double PeakRssGb()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("VmHWM:")) return long.Parse(line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)[1]) / 1e6;
        return double.NaN;
    }

    public static string Markdown(IReadOnlyList<Dictionary<string, object>> runs)
    {
        var keys = runs.SelectMany(r => r.Keys).Distinct().ToList();
        var sb = new StringBuilder();
        sb.Append("| metric | ").Append(string.Join(" | ", runs.Select(r => r["config"]))).Append(" |\n");
        sb.Append("|---|").Append(string.Concat(runs.Select(_ => "---:|"))).Append('\n');
        foreach (var k in keys.Where(k => k != "config"))
            sb.Append("| ").Append(k).Append(" | ").Append(string.Join(" | ", runs.Select(r => r.TryGetValue(k, out var v) ? JsonSerializer.Serialize(v, Json) : "–"))).Append(" |\n");
        return sb.ToString();
    }
}
