using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Blip2Sharp.Configuration;
using Blip2Sharp.Loading;
using Blip2Sharp.Modeling;
using Blip2Sharp.Modeling.Layers;
using Blip2Sharp.Processing;
using Blip2Sharp.Processing.Tokenizers;
using Blip2Sharp.Tasks;
using static TorchSharp.torch;

namespace Blip2Sharp.Training;

public enum TrainStage { Stage1, Stage2 }

/// <summary>What a progress display needs after each logged step.</summary>
public sealed record TrainProgress(int Step, int MaxSteps, IReadOnlyDictionary<string, double> Losses, double Lr, double PairsPerSecond, TimeSpan Eta, int SkippedImages);

/// <summary>
/// The trainer for both stages: AdamW (β 0.9 / 0.98, weight decay 0.05, none on biases and norms), linear warm-up then
/// cosine decay, gradient accumulation and clipping; every logged step appended to metrics.csv; checkpoints in the
/// Hugging Face layout written to a temporary folder and renamed whole (never half-written), with the optimizer and
/// training state. All randomness derives from (seed, step), so a resumed run repeats an uninterrupted one.
/// </summary>
public sealed class Trainer
{
    public TrainStage Stage { get; }
    public string InitDir { get; }
    public string OutDir { get; }
    public TrainConfig Config { get; }
    public ImageTextData Data { get; }
    public ImageTextData? ValData { get; init; }
    /// <summary>Stage 2: a stage-1 output whose Q-Former and queries replace the init checkpoint's.</summary>
    public string? QFormerFrom { get; init; }
    /// <summary>Stage 1: initialise the Q-Former from this BERT checkpoint folder (cross-attention and queries random).</summary>
    public string? BertFrom { get; init; }
    /// <summary>Stage 2 with prompt_alignment: the text each caption's soft prompt is aligned with (default: the caption).</summary>
    public Func<string, string>? PromptText { get; init; }
    /// <summary>
    /// Called once training ends with metrics.csv and the path of a chart to draw from it (metrics.png); the library
    /// draws no charts: the `blip2 train` command and the demo pass Blip2Sharp.Plots' MetricsChart.FromCsv.
    /// </summary>
    public Action<string, string>? DrawMetrics { get; init; }

    public Action<string>? Log { get; init; }

    public Trainer(TrainStage stage, string initDir, ImageTextData data, string outDir, TrainConfig config)
    {
        config.Validate();
        if (data.Pairs.Count < config.BatchSize)
            throw new ArgumentException($"the dataset has {data.Pairs.Count} pairs, fewer than one batch of {config.BatchSize}; add data or lower --batch-size.");
        if (stage == TrainStage.Stage1 && config.BatchSize < 2)
            throw new ArgumentException("stage 1 needs a batch of at least 2 pairs (in-batch negatives for ITC and ITM).");
        Stage = stage;
        InitDir = initDir;
        Data = data;
        OutDir = outDir;
        Config = config;
    }

    public static string? LatestCheckpoint(string outDir) =>
        Directory.Exists(outDir)
            ? Directory.GetDirectories(outDir, "checkpoint-*")
                .Select(d => (d, ok: int.TryParse(Path.GetFileName(d)["checkpoint-".Length..], out int n), n))
                .Where(x => x.ok && File.Exists(Path.Combine(x.d, "trainer_state.json")))
                .OrderByDescending(x => x.n).Select(x => x.d).FirstOrDefault()
            : null;

    /// <summary>Runs to max_steps (from the latest checkpoint when resuming); returns the final checkpoint folder.</summary>
    public string Run(bool resume, Action<TrainProgress>? progress = null, CancellationToken ct = default)
    {
        Directory.CreateDirectory(OutDir);
        var warnings = new ConfigWarnings();
        if (Data.EmptyCaptions > 0) Log?.Invoke($"{Data.EmptyCaptions} pairs with an empty caption were dropped.");
        Log?.Invoke($"{Data.Pairs.Count} pairs; captions are cut at {Config.MaxTextTokens} tokens.");
        string? from = resume ? LatestCheckpoint(OutDir) : null;
        if (!resume && LatestCheckpoint(OutDir) is not null)
            throw new ArgumentException($"{OutDir} already holds checkpoints: pass --resume to continue, or choose another --out.");
        string weightsDir = from ?? InitDir;

        using var session = Stage == TrainStage.Stage1 ? (ISession)new Stage1Session(this, weightsDir, from is not null, warnings) : new Stage2Session(this, weightsDir, from is not null, warnings);
        using var optimizer = new AdamW(session.Trainable) { WeightDecay = Config.WeightDecay, Beta1 = Config.Beta1, Beta2 = Config.Beta2 };
        int start = 0;
        if (from is not null)
        {
            using var state = SafetensorsFile.Open(Path.Combine(from, "optimizer.safetensors"));
            optimizer.LoadStateDict(state.Entries.ToDictionary(e => e.Name, e => state.ReadTensor(e.Name)));
            start = JsonDocument.Parse(File.ReadAllText(Path.Combine(from, "trainer_state.json"))).RootElement.GetProperty("step").GetInt32();
            Log?.Invoke($"resuming from {from} at step {start}");
        }
        int warmup = Config.WarmupSteps ?? (Stage == TrainStage.Stage1 ? 5000 : 2000);       // LAVIS's configs
        // An epoch is one pass over the pairs: (pairs / batch) optimizer steps, at least 1.
        int stepsPerEpoch = Math.Max(1, Data.Pairs.Count / (Config.BatchSize * Config.GradAccumulation));
        var lavis = new LavisLrSchedule(Config.Lr, Config.MinLr, Config.WarmupLr, warmup,
            MaxEpochs: (Config.MaxSteps + stepsPerEpoch - 1) / stepsPerEpoch);
        var perStep = new LrSchedule(Config.Lr, Config.MinLr, Config.WarmupLr, warmup, Config.MaxSteps);
        double LrAt(int step) => Config.LrSchedule == "cosine_per_step" ? perStep.At(step) : lavis.AtStep(step, stepsPerEpoch);
        var metrics = new MetricsCsv(Path.Combine(OutDir, "metrics.csv"), session.LossNames);
        metrics.TruncateAfter(start);
        int skipped = 0;
        var watch = Stopwatch.StartNew();
        int pairsSinceLog = 0;
        string last = from ?? "";
        var sums = session.LossNames.ToDictionary(n => n, _ => 0.0);
        int counted = 0;

        // Images of the next micro-batch are decoded and augmented on other threads while the current one trains.
        (List<ImageTextPair> Batch, RgbImage?[] Images) LoadNow(long global)
        {
            var batch = BatchAt(global);
            return (batch, ImageTextData.LoadImages(batch.Select(p => p.Image).ToList(), session.ImageProcessor, Config.Augment, Config.Seed, (int)global));
        }
        Task<(List<ImageTextPair> Batch, RgbImage?[] Images)> Load(long global) =>
            Config.Prefetch ? Task.Run(() => LoadNow(global)) : Task.FromResult(LoadNow(global));
        long firstGlobal = (long)start * Config.GradAccumulation;
        var next = start < Config.MaxSteps ? Load(firstGlobal) : null;

        for (int step = start + 1; step <= Config.MaxSteps; step++)
        {
            ct.ThrowIfCancellationRequested();
            var micros = new List<(List<ImageTextPair> Batch, RgbImage?[] Images, long Global)>();
            for (int micro = 0; micro < Config.GradAccumulation; micro++)
            {
                long global = (long)(step - 1) * Config.GradAccumulation + micro;
                var (batch, images) = next!.Result;
                next = global + 1 < (long)Config.MaxSteps * Config.GradAccumulation ? Load(global + 1) : null;
                micros.Add((batch, images, global));
            }
            // Nothing is applied before the optimizer runs, so a step hit by the Scalar race is repeated as it was.
            var (stepSums, stepPairs, stepSkipped) = NativeScalarRace.Retry(() => AccumulateStep(session, optimizer, micros, step), m => Log?.Invoke($"step {step}: {m}"));
            foreach (var (n, v) in stepSums) sums[n] += v;
            pairsSinceLog += stepPairs;
            skipped += stepSkipped;
            counted++;
            double lr = LrAt(step - 1);
            optimizer.Update(lr);

            if (step % Config.LogEvery == 0 || step == Config.MaxSteps)
            {
                var mean = sums.ToDictionary(kv => kv.Key, kv => kv.Value / Math.Max(1, counted));
                double pps = pairsSinceLog / Math.Max(1e-9, watch.Elapsed.TotalSeconds);
                metrics.Append(step, mean, lr, pps);
                var eta = TimeSpan.FromSeconds((Config.MaxSteps - step) * watch.Elapsed.TotalSeconds / Math.Max(1, counted));
                progress?.Invoke(new TrainProgress(step, Config.MaxSteps, mean, lr, pps, eta, skipped));
                foreach (var k in sums.Keys) sums[k] = 0;
                counted = 0;
                pairsSinceLog = 0;
                watch.Restart();
            }
            if (Config.EvalEvery > 0 && ValData is not null && step % Config.EvalEvery == 0)
                Log?.Invoke($"step {step}: {session.Evaluate(ValData)}");
            if (step % Config.SaveEvery == 0 || step == Config.MaxSteps)
                last = SaveCheckpoint(session, optimizer, step);
        }
        if (skipped > 0) Log?.Invoke($"{skipped} unreadable images were skipped.");
        DrawMetrics?.Invoke(Path.Combine(OutDir, "metrics.csv"), Path.Combine(OutDir, "metrics.png"));
        return last;
    }

    /// <summary>Forward and backward of one optimizer step's micro-batches (gradients clipped); returns the losses, pairs used and images skipped.</summary>
    private (Dictionary<string, double> Sums, int Pairs, int Skipped) AccumulateStep(ISession session, AdamW optimizer,
        List<(List<ImageTextPair> Batch, RgbImage?[] Images, long Global)> micros, int step)
    {
        // Dropout draws from libtorch's process-wide generator (TorchSharp's dropout takes no generator): seeded per step
        // so that a resumed run repeats the masks, as long as nothing else in the process draws from it meanwhile.
        manual_seed(Config.Seed * 1_000_003 + step);
        session.TrainMode();
        optimizer.ZeroGrad();
        var sums = session.LossNames.ToDictionary(n => n, _ => 0.0);
        int pairs = 0, skipped = 0;
        foreach (var (batch, images, global) in micros)
        {
            var ok = Enumerable.Range(0, batch.Count).Where(i => images[i] is not null).ToList();
            skipped += batch.Count - ok.Count;
            if (ok.Count < (Stage == TrainStage.Stage1 ? 2 : 1)) continue;
            using var scope = NewDisposeScope();
            var pixels = session.ImageProcessor.Preprocess(ok.Select(i => images[i]!).ToList()); // images already at model size: resize is a no-op
            var losses = session.Losses(pixels, ok.Select(i => batch[i].Caption).ToList(), ok.Select(i => batch[i].Image).ToList(), global);
            var total = Scalars.Mul(losses.Values.Aggregate(Scalars.Add), 1.0 / Config.GradAccumulation);
            total.backward();
            foreach (var (n, v) in losses) sums[n] += v.item<float>() / Config.GradAccumulation;
            pairs += ok.Count;
        }
        if (Config.ClipGradNorm > 0)
        {
            using var clipScope = NewDisposeScope(); // roots whatever wrappers the clip makes while native code uses them (see AdamW.ZeroGrad)
            nn.utils.clip_grad_norm_(optimizer.Parameters.Select(p => p.Param), Config.ClipGradNorm);
        }
        return (sums, pairs, skipped);
    }

    private List<ImageTextPair> BatchAt(long globalBatch)
    {
        int n = Data.Pairs.Count, b = Config.BatchSize;
        int perEpoch = n / b; // the last incomplete batch of an epoch is dropped
        int epoch = (int)(globalBatch / perEpoch);
        int offset = (int)(globalBatch % perEpoch) * b;
        var order = Data.Order(Config.Seed, epoch);
        return [.. order.Skip(offset).Take(b).Select(i => Data.Pairs[i])];
    }

    private string SaveCheckpoint(ISession session, AdamW optimizer, int step)
    {
        string final = Path.Combine(OutDir, $"checkpoint-{step}");
        string tmp = Path.Combine(OutDir, $".tmp-checkpoint-{step}-{Environment.ProcessId}");
        if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
        Directory.CreateDirectory(tmp);
        foreach (var f in Directory.GetFiles(InitDir).Where(f => Path.GetExtension(f) is ".json" or ".txt" or ".model" && !Path.GetFileName(f).StartsWith("golden") && Path.GetFileName(f) != "trainer_state.json"))
        {
            File.Copy(f, Path.Combine(tmp, Path.GetFileName(f)), true);
            File.SetAttributes(Path.Combine(tmp, Path.GetFileName(f)), FileAttributes.Normal);
        }
        session.Save(tmp);
        SafetensorsWriter.Save(Path.Combine(tmp, "optimizer.safetensors"), optimizer.StateDict());
        File.WriteAllText(Path.Combine(tmp, "trainer_state.json"), JsonSerializer.Serialize(new { step, stage = Stage.ToString().ToLowerInvariant(), seed = Config.Seed, config = Config }, new JsonSerializerOptions { WriteIndented = true }));
        if (Directory.Exists(final)) Directory.Delete(final, true);
        Directory.Move(tmp, final); // the checkpoint appears whole or not at all
        foreach (var old in Directory.GetDirectories(OutDir, "checkpoint-*")
            .Where(d => int.TryParse(Path.GetFileName(d)["checkpoint-".Length..], out int n) && n < step).OrderByDescending(d => d).Skip(1))
            Directory.Delete(old, true);
        return final;
    }

    // ---- the two stages ----------------------------------------------------------------------------------------

    private interface ISession : IDisposable
    {
        IReadOnlyList<string> LossNames { get; }
        IEnumerable<(string, TorchSharp.Modules.Parameter)> Trainable { get; }
        BlipImageProcessor ImageProcessor { get; }
        void TrainMode();
        Dictionary<string, Tensor> Losses(Tensor pixels, IReadOnlyList<string> captions, IReadOnlyList<string> images, long globalBatch);
        void Save(string dir);
        string Evaluate(ImageTextData val);
    }

    private sealed class Stage1Session : ISession
    {
        private readonly Trainer _t;
        private readonly Stage1Objective _objective;
        private readonly Tokenizer _tokenizer;

        public Stage1Session(Trainer t, string dir, bool resuming, ConfigWarnings warnings)
        {
            _t = t;
            var model = Blip2ForImageTextRetrieval.FromPretrained(dir, warnings: warnings);
            _tokenizer = Tokenizer.FromPretrained(t.InitDir, warnings);
            int dec = _tokenizer.BosTokenId ?? throw new InvalidConfigException($"{t.InitDir}: the Q-Former tokenizer has no [DEC] bos token, which ITG needs.");
            _objective = new Stage1Objective(model, dec, _tokenizer.PadTokenId ?? 0) { DropLastVisionLayers = t.Config.DropLastVisionLayers };
            ImageProcessor = BlipImageProcessor.ForCheckpoint(t.InitDir, model.Config, warnings);
            string heads = Path.Combine(dir, "itg_head.safetensors");
            if (File.Exists(heads)) _objective.LoadHeads(heads);
            else
            {
                using var noGrad = no_grad();
                ModelInit.Randomize(_objective.ItgHead, t.Config.Seed);
                _objective.Temp.fill_(0.07);
                if (!resuming) t.Log?.Invoke("created the ITG head (itg_head.*) and the ITC temperature: the init checkpoint has none.");
            }
            if (!resuming && t.BertFrom is { } bert)
            {
                int n = BertInit.Apply(_objective, bert, t.Config.Seed);
                t.Log?.Invoke($"initialised the Q-Former from BERT ({n} tensors from {bert}); cross-attention, queries and heads start random.");
            }
        }

        public IReadOnlyList<string> LossNames => ["loss_itc", "loss_itm", "loss_itg"];
        public IEnumerable<(string, TorchSharp.Modules.Parameter)> Trainable => _objective.named_parameters().Where(p => p.parameter.requires_grad);
        public BlipImageProcessor ImageProcessor { get; }
        public void TrainMode() => _objective.TrainMode();

        public Dictionary<string, Tensor> Losses(Tensor pixels, IReadOnlyList<string> captions, IReadOnlyList<string> images,
            long globalBatch)
        {
            var (ids, mask) = _tokenizer.PadRight([.. captions.Select(c => _tokenizer.EncodeTruncated(c, _t.Config.MaxTextTokens))]);
            var gen = new Generator((ulong)(_t.Config.Seed * 7919 + globalBatch));
            // Image ids, as LAVIS's caption datasets pass them: captions of one image are positives of each other.
            var index = new Dictionary<string, long>(StringComparer.Ordinal);
            using var imageIds = tensor(images.Select(p => index.TryGetValue(p, out var i) ? i : index[p] = index.Count).ToArray());
            var l = _objective.Forward(pixels, ids, mask, gen, imageIds);
            return new() { ["loss_itc"] = l.Itc, ["loss_itm"] = l.Itm, ["loss_itg"] = l.Itg };
        }

        public void Save(string dir)
        {
            SafetensorsWriter.SaveModule(Path.Combine(dir, "model.safetensors"), _objective.Model);
            SafetensorsWriter.Save(Path.Combine(dir, "itg_head.safetensors"),
                _objective.named_parameters().Where(p => !p.name.StartsWith("model.")).Select(p => new KeyValuePair<string, Tensor>(p.name, p.parameter)));
        }

        public string Evaluate(ImageTextData val)
        {
            _objective.eval();
            string dir = Path.Combine(Path.GetTempPath(), "blip2-eval-" + Guid.NewGuid().ToString("N"));
            try
            {
                Directory.CreateDirectory(dir);
                foreach (var f in Directory.GetFiles(_t.InitDir).Where(f => f.EndsWith(".json") || f.EndsWith(".txt"))) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
                Save(dir);
                using var retriever = Blip2Retriever.FromPretrained(dir);
                var byImage = val.Pairs.GroupBy(p => p.Image).ToList();
                var data = new RetrievalEvaluation.Dataset([.. byImage.Select(g => g.Key)], [.. byImage.SelectMany(g => g.Select(p => p.Caption))],
                    [.. byImage.SelectMany((g, i) => g.Select(_ => i))], [.. byImage.Select((g, i) => Enumerable.Range(byImage.Take(i).Sum(x => x.Count()), g.Count()).ToList())]);
                var m = RetrievalEvaluation.Evaluate(retriever, data, kTest: 16);
                return $"held-out retrieval R@1 image→text {m.I2tR1:P1}, text→image {m.T2iR1:P1}";
            }
            finally
            {
                Directory.Delete(dir, true);
            }
        }

        public void Dispose() => _objective.Dispose();
    }

    private sealed class Stage2Session : ISession
    {
        private readonly Trainer _t;
        private readonly Stage2Objective _objective;

        public Stage2Session(Trainer t, string dir, bool resuming, ConfigWarnings warnings)
        {
            _t = t;
            // Refused from config.json, before the weights load and before any step or metrics file.
            if (t.Config.PromptAlignment > 0) Stage2Objective.CheckAlignment(Blip2Config.Load(dir, warnings), t.Config.PromptAlignment);
            var model = Blip2ForConditionalGeneration.FromPretrained(dir, warnings: warnings);
            if (!resuming && t.QFormerFrom is { } q)
            {
                using var reader = CheckpointReader.Open(q);
                var ours = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
                int copied = 0;
                using var noGrad = no_grad();
                foreach (var name in reader.Names.Where(n => n.StartsWith("qformer.") || n == "query_tokens"))
                {
                    if (!ours.TryGetValue(name, out var p) || !p.shape.SequenceEqual(reader.Describe(name).Shape)) continue;
                    using var src = reader.Read(name);
                    p.copy_(src);
                    copied++;
                }
                t.Log?.Invoke($"took {copied} Q-Former tensors from {q} (the text-path weights of stage 1 are not used in stage 2).");
            }
            var tokenizer = Tokenizer.FromPretrained(t.InitDir, warnings);
            _objective = new Stage2Objective(model, tokenizer)
            {
                MaxTextTokens = t.Config.MaxTextTokens, PromptAlignment = t.Config.PromptAlignment, PromptText = t.PromptText,
                Prompt = t.Config.Prompt,
            };
            ImageProcessor = BlipImageProcessor.ForCheckpoint(t.InitDir, model.Config, warnings);
        }

        public IReadOnlyList<string> LossNames => _objective.Names;
        public IEnumerable<(string, TorchSharp.Modules.Parameter)> Trainable => _objective.Model.named_parameters().Where(p => p.parameter.requires_grad);
        public BlipImageProcessor ImageProcessor { get; }
        public void TrainMode() => _objective.TrainMode();

        public Dictionary<string, Tensor> Losses(Tensor pixels, IReadOnlyList<string> captions, IReadOnlyList<string> images,
            long globalBatch) => _objective.Losses(pixels, captions);

        public void Save(string dir) =>
            SafetensorsWriter.SaveModule(Path.Combine(dir, "model.safetensors"), _objective.Model);

        public string Evaluate(ImageTextData val)
        {
            _objective.Model.eval();
            using var noGrad = no_grad();
            double sum = 0;
            int n = 0;
            foreach (var chunk in val.Pairs.Chunk(_t.Config.BatchSize))
            {
                var images = ImageTextData.LoadImages(chunk.Select(p => p.Image).ToList(), ImageProcessor, false, 0, 0);
                var ok = Enumerable.Range(0, chunk.Length).Where(i => images[i] is not null).ToList();
                if (ok.Count == 0) continue;
                using var scope = NewDisposeScope();
                var pixels = ImageProcessor.Preprocess(ok.Select(i => images[i]!).ToList());
                sum += _objective.Loss(pixels, ok.Select(i => chunk[i].Caption).ToList()).item<float>() * ok.Count;
                n += ok.Count;
            }
            // A few sample captions (greedy, no prompt), to see what the model says.
            var samples = new List<string>();
            var first = val.Pairs.Select(p => p.Image).Distinct().Take(3).ToList();
            var decoded = ImageTextData.LoadImages(first, ImageProcessor, false, 0, 0);
            var readable = Enumerable.Range(0, first.Count).Where(i => decoded[i] is not null).ToList();
            if (readable.Count > 0)
            {
                using var scope = NewDisposeScope();
                var pixels = ImageProcessor.Preprocess(readable.Select(i => decoded[i]!).ToList());
                var empty = _objective.Tokenizer.Encode("").Ids;
                var ids = tensor(Enumerable.Range(0, readable.Count).SelectMany(_ => empty.Select(x => (long)x)).ToArray()).reshape(readable.Count, empty.Count);
                var generated = new Generation.Blip2Generator(_objective.Model).Generate(pixels, ids, null, new Generation.GenerationOptions { MaxNewTokens = 20 }, useImageTokens: false);
                for (int i = 0; i < readable.Count; i++)
                    samples.Add($"{Path.GetFileName(first[readable[i]])}: \"{_objective.Tokenizer.Decode(generated[i][0].Tokens.Where(t => t < _objective.Tokenizer.Count), skipSpecialTokens: true).Trim()}\"");
            }
            return $"held-out loss {sum / Math.Max(1, n):F4}; samples: {string.Join("; ", samples)}";
        }

        public void Dispose() => _objective.Model.Dispose();
    }
}

/// <summary>metrics.csv: step, one column per loss, lr, pairs per second.</summary>
internal sealed class MetricsCsv(string path, IReadOnlyList<string> losses)
{
    private string Header => string.Join(",", new[] { "step" }.Concat(losses).Concat(["lr", "pairs_per_second"]));

    public void TruncateAfter(int step)
    {
        if (!File.Exists(path)) { File.WriteAllText(path, Header + "\n"); return; }
        var keep = File.ReadAllLines(path).Where((l, i) => i == 0 || (int.TryParse(l.Split(',')[0], out int s) && s <= step)).ToList();
        string tmp = path + ".tmp";
        File.WriteAllLines(tmp, keep);
        File.Move(tmp, path, true);
    }

    public void Append(int step, IReadOnlyDictionary<string, double> values, double lr, double pps)
    {
        var cells = new[] { step.ToString(CultureInfo.InvariantCulture) }
            .Concat(losses.Select(l => values[l].ToString("R", CultureInfo.InvariantCulture)))
            .Concat([lr.ToString("R", CultureInfo.InvariantCulture), pps.ToString("F2", CultureInfo.InvariantCulture)]);
        File.AppendAllText(path, string.Join(",", cells) + "\n");
    }
}
