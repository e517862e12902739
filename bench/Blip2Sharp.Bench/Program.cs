using System.Diagnostics;
using System.Text.Json;
using Blip2Sharp.Configuration;
using Blip2Sharp.Modeling;
using static TorchSharp.torch;

// Blip2Sharp benchmarks on real-size architectures with random weights (nothing is downloaded).
//   forward CONFIG_DIR [--image-size N] [--threads N]: build, one 224 px image through the whole model, timings + peak RSS.
//   micro: BenchmarkDotNet micro-benchmarks of the hot kernels.
if (args.Length >= 1 && args[0] == "micro")
{
    BenchmarkDotNet.Running.BenchmarkRunner.Run<Blip2Sharp.Bench.Kernels>(args: args.Skip(1).ToArray());
    return 0;
}
//   make-checkpoint CONFIG_DIR OUT_DIR: a full checkpoint folder with random weights and a synthetic tokenizer.
if (args.Length == 3 && args[0] == "make-checkpoint")
{
    var watch = Stopwatch.StartNew();
    Blip2Sharp.Bench.RandomCheckpoint.Write(args[1], args[2]);
    Console.WriteLine($"wrote {args[2]} in {watch.Elapsed.TotalSeconds:F1} s");
    return 0;
}
//   search-itc [N] [DB]: the ITC stage of a text search over N stored image embeddings (32 × 256 each).
if (args.Length >= 1 && args[0] == "search-itc")
{
    int n = args.Length > 1 ? int.Parse(args[1]) : 100_000;
    string db = args.Length > 2 ? args[2] : Path.Combine(Path.GetTempPath(), $"blip2-bench-{n}.db");
    Blip2Sharp.Bench.SearchBench.Run(n, db);
    return 0;
}
//   models OUT_PREFIX IMAGE CONFIG_DIR[=CHECKPOINT_DIR] ...: the real-size report (JSON + markdown) for each architecture.
if (args.Length >= 4 && args[0] == "models")
{
    set_num_threads(Environment.ProcessorCount);
    var runs = new List<Dictionary<string, object>>();
    foreach (var spec in args.Skip(3))
    {
        var parts = spec.Split('=', 2);
        var run = Blip2Sharp.Bench.ModelBench.Run(parts[0], parts.Length > 1 ? parts[1] : null, args[2], 20);
        runs.Add(run);
        Console.WriteLine(JsonSerializer.Serialize(run, Blip2Sharp.Bench.ModelBench.Json));
        GC.Collect();
    }
    File.WriteAllText(args[1] + ".json", JsonSerializer.Serialize(runs, Blip2Sharp.Bench.ModelBench.Json));
    File.WriteAllText(args[1] + ".md", Blip2Sharp.Bench.ModelBench.Markdown(runs));
    return 0;
}
//   gemv-rows [--int8 | --torch]: the decoding product (or libtorch's linear) at blip2-opt-2.7b's shapes for 1 to 16 rows.
if (args.Length >= 1 && args[0] == "gemv-rows")
{
    set_num_threads(Environment.ProcessorCount);
    if (args.Contains("--cached")) Blip2Sharp.Bench.GemvRows.Cached();
    else Blip2Sharp.Bench.GemvRows.Run(args.Contains("--int8"), args.Contains("--torch"));
    return 0;
}
//   streams CONFIG_DIR [--tokens N] [--int8]: continuous batching, aggregate tokens/s with 1, 4, 8 and 16 concurrent streams.
if (args.Length >= 2 && args[0] == "streams")
{
    set_num_threads(Environment.ProcessorCount);
    int tokens = args.SkipWhile(a => a != "--tokens").Skip(1).Select(int.Parse).FirstOrDefault(32);
    var run = Blip2Sharp.Bench.StreamsBench.Run(args[1], tokens, args.Contains("--int8"), [1, 4, 8, 16, 8, 4, 1]);
    Console.WriteLine(JsonSerializer.Serialize(run, Blip2Sharp.Bench.ModelBench.Json));
    return 0;
}
if (args.Length < 2 || args[0] != "forward")
{
    Console.Error.WriteLine("usage: Blip2Sharp.Bench forward CONFIG_DIR [--threads N] | make-checkpoint CONFIG_DIR OUT_DIR");
    return 2;
}
string dir = args[1];
int threads = args.SkipWhile(a => a != "--threads").Skip(1).Select(int.Parse).FirstOrDefault(Environment.ProcessorCount);
set_num_threads(threads);

var results = new Dictionary<string, object>();
var config = Blip2Config.Load(dir, new ConfigWarnings());
var sw = Stopwatch.StartNew();
using var model = new Blip2ForConditionalGeneration(config, ModelOptions.Cpu);
results["build_s"] = sw.Elapsed.TotalSeconds;
sw.Restart();
ModelInit.Randomize(model, seed: 0);
model.eval();
results["random_init_s"] = sw.Elapsed.TotalSeconds;
long parameters = model.parameters().Sum(p => p.numel());
results["parameters"] = parameters;
results["weights_gb"] = parameters * 4 / 1e9;

int size = config.VisionConfig.ImageSize, q = config.NumQueryTokens;
var gen = new Generator(1);
using var pixels = randn([1, 3, size, size], generator: gen);
// [<image> × Q] + "</s>" + a 10-token prompt, as the processor builds it.
var ids = Enumerable.Repeat((long)(config.ImageTokenIndex ?? 0), config.ImageTokenIndex is null ? 0 : q)
    .Concat([2L]).Concat(Enumerable.Range(100, 10).Select(i => (long)i)).ToArray();
using var inputIds = tensor(ids).unsqueeze(0);
using (inference_mode())
{
    for (int rep = 0; rep < 2; rep++)
    {
        sw.Restart();
        using var vision = model.GetImageFeatures(pixels);
        double visionS = sw.Elapsed.TotalSeconds;
        sw.Restart();
        using var output = model.Forward(pixels, inputIds);
        double forwardS = sw.Elapsed.TotalSeconds;
        results[$"run{rep}_vision_s"] = visionS;
        results[$"run{rep}_full_forward_s"] = forwardS;
        results["logits_shape"] = string.Join("x", output.Logits.shape);
        results["logits_finite"] = output.Logits.isfinite().all().item<bool>();
    }
}
results["peak_rss_gb"] = Blip2Sharp.Bench.ModelBench.PeakRssGb();
results["threads"] = threads;
Console.WriteLine(JsonSerializer.Serialize(results, Blip2Sharp.Bench.ModelBench.Json));
return 0;
