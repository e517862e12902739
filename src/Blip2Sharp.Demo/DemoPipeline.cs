using Blip2Sharp.Plots;
using System.Text.Json;
using System.Text.Json.Nodes;
using Blip2Sharp.Configuration;
using Blip2Sharp.Loading;
using Blip2Sharp.Modeling;
using Blip2Sharp.Modeling.Opt;
using Blip2Sharp.Processing.Tokenizers;
using Blip2Sharp.Training;
using static TorchSharp.torch;

namespace Blip2Sharp.Demo;

/// <summary>
/// The whole method in miniature, from scratch: scenes, a text-only OPT and an attribute-trained ViT (the frozen
/// unimodal models), then BLIP-2 stage 1 (ITC, ITM, ITG) and stage 2 (captions only) with the project's trainer.
/// Every intermediate is a folder in the Hugging Face layout.
/// </summary>
public static class DemoPipeline
{
    public sealed record Options
    {
        public long Seed { get; init; } = 1;
        public int TrainScenes { get; init; } = 5000;
        public int ValScenes { get; init; } = 200;
        public int TestScenes { get; init; } = 1000;
        /// <summary>Test scenes holding the held-out colour-shape pair (<see cref="Scene.HeldOut"/>), reported apart.</summary>
        public int HoldoutScenes { get; init; } = 300;
        /// <summary>Scenes described in the language model's text corpus (text is cheap: many more than the images).</summary>
        public int TextScenes { get; init; } = 50000;
        public int ImageSize { get; init; } = 96;
        public VisionPretraining.Options Vision { get; init; } = new();
        public TextPretraining.Options Text { get; init; } = new();
        public int QFormerHidden { get; init; } = 128;
        public int QFormerLayers { get; init; } = 2;
        public int QFormerHeads { get; init; } = 4;
        public int Queries { get; init; } = 32;
        /// <summary>Evaluate on a freshly generated test split and write report.md.</summary>
        public bool Evaluate { get; init; } = true;
        /// <summary>Also train stage 2 from a random Q-Former (no stage 1) and evaluate it: the paper's Figure 5 in miniature.</summary>
        public bool Ablation { get; init; }
        public long TestSeed { get; init; } = 12345;
        // No augmentation: a flip swaps left and right and a crop moves objects across cells, and captions name both.
        // No prefetch: see TrainConfig.Prefetch.
        // The demo's optimizer recipe (not LAVIS's defaults): β2 0.98, gradient clipping at 1, warm-up then a cosine
        // per step; its objective is LAVIS's.
        public TrainConfig Stage1 { get; init; } = new()
        {
            MaxSteps = 2000, BatchSize = 32, Lr = 1e-3, WarmupSteps = 100, SaveEvery = 500, LogEvery = 25, MaxTextTokens = 48,
            Augment = false, Prefetch = false, Beta2 = 0.98, ClipGradNorm = 1, LrSchedule = "cosine_per_step",
        };
        // Prompt alignment (not in the paper, see Stage2Objective.PromptAlignment): toward the scene's first caption.
        public TrainConfig Stage2 { get; init; } = new()
        {
            MaxSteps = 2000, BatchSize = 32, Lr = 1e-3, WarmupSteps = 100, SaveEvery = 500, LogEvery = 25, MaxTextTokens = 48,
            Augment = false, Prefetch = false, PromptAlignment = 5, Beta2 = 0.98, ClipGradNorm = 1, LrSchedule = "cosine_per_step",
        };

        /// <summary>The language model's options: descriptions placed where the soft prompt of <see cref="Queries"/> queries stands.</summary>
        public TextPretraining.Options TextWithPrompt => Text with { PromptLength = Queries };

        /// <summary>The image encoder's options at this image size: one patch per scene cell.</summary>
        public VisionPretraining.Options VisionAtSize => Vision with { ImageSize = ImageSize, PatchSize = ImageSize / 3 };
    }

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>What a run produced: the exported demo model (generation/ and retrieval/), the metrics and the report.</summary>
    public sealed record Result(string ModelDir, DemoMetrics? Metrics, DemoMetrics? Holdout, DemoMetrics? Ablation,
        string? Report, IReadOnlyList<(string Phase, TimeSpan Time)> Timings);

    /// <summary>Runs every step into workDir, exports the model to workDir/model, and (by default) evaluates it and writes report.md.</summary>
    public static Result Run(string workDir, Options o, Action<string>? log = null)
    {
        Directory.CreateDirectory(workDir);
        string P(string name) => Path.Combine(workDir, name);
        var clock = new PhaseClock(P("timings.json"));
        var userLog = log;
        log = m =>
        {
            clock.Tick();
            userLog?.Invoke(m);
        };
        // A phase whose output is already there (a run stopped by a crash or Ctrl-C, started again) is not redone;
        // an interrupted stage resumes from its latest checkpoint.
        bool Have(string file) => File.Exists(P(file));
        clock.Begin("scenes and tokenizers");
        log?.Invoke("rendering scenes");
        if (!Have("data/train_scenes.jsonl"))
            SceneDataset.Write(P("data"), o.Seed, new(o.TrainScenes, o.ValScenes, o.TestScenes), o.ImageSize);
        if (!Have("data/" + SceneDataset.TrainKeysFile))                    // a work folder of an earlier version
            File.WriteAllLines(P("data/" + SceneDataset.TrainKeysFile),
                SceneDataset.Keys(P("data/train_scenes.jsonl")).Distinct().Order(StringComparer.Ordinal));
        var trainKeys = SceneDataset.ReadKeys(P("data/" + SceneDataset.TrainKeysFile));
        // The test splits (seen combinations, and the held-out pair) are made anew at every run: a few seconds.
        if (o.Evaluate)
        {
            if (Directory.Exists(P("test-data"))) Directory.Delete(P("test-data"), recursive: true);
            SceneDataset.Write(P("test-data"), o.TestSeed, new(Test: o.TestScenes, Holdout: o.HoldoutScenes), o.ImageSize,
                trainKeys);
        }

        var words = SceneVocabulary.Words(seed: o.Seed);
        SceneVocabulary.WriteBpe(P("opt"), words);
        SceneVocabulary.WriteWordPiece(P("qformer-tokenizer"), words);
        clock.End();

        clock.Begin("language model pre-training (text only)");
        log?.Invoke("pre-training the language model on text");
        var bpe = Tokenizer.FromPretrained(P("opt"));
        if (!Have("opt/model.safetensors"))
        using (var lm = new OptForCausalLM(TextPretraining.Config(o.Text, bpe.Count), ModelOptions.Cpu))
        {
            var curve = new Curve(P("curves/language_model"), "language model", o.Text.Steps, log);
            var (a, b) = TextPretraining.Train(lm, bpe, TextPretraining.Corpus(o.TextScenes, o.Seed), TextPretraining.Repetitions([.. words], o.TextScenes, o.Seed), o.TextWithPrompt, curve.Add);
            curve.Save();
            log?.Invoke($"language model loss {a:F3} → {b:F3}");
            TextPretraining.Save(lm, P("opt"));
        }
        clock.End();
        clock.Begin("image encoder pre-training (no text)");
        log?.Invoke("pre-training the image encoder on scene attributes");
        var vision = VisionPretraining.Config(o.VisionAtSize);
        if (!Have("vit/vision_model.safetensors"))
        using (var vit = new Modeling.Vision.Blip2VisionModel(vision, ModelOptions.Cpu))
        {
            var curve = new Curve(P("curves/image_encoder"), "image encoder", o.Vision.Steps, log);
            var (a, b) = VisionPretraining.Train(vit, o.VisionAtSize, curve.Add);
            curve.Save();
            log?.Invoke($"image encoder loss {a:F3} → {b:F3}");
            VisionPretraining.Save(vit, P("vit"));
        }
        clock.End();

        clock.Begin("stage 1 (ITC, ITM, ITG)");
        var wordPiece = Tokenizer.FromPretrained(P("qformer-tokenizer"));
        var optConfig = JsonNode.Parse(File.ReadAllText(P("opt/config.json")))!.AsObject();
        if (!Have("init-retrieval/model.safetensors")) AssembleRetrieval(P("init-retrieval"), P("vit"), P("qformer-tokenizer"), wordPiece.Count, o);
        log?.Invoke("stage 1: ITC + ITM + ITG");
        var train = ImageTextData.Load(P("data/train.jsonl"));
        string s1 = new Trainer(TrainStage.Stage1, P("init-retrieval"), train, P("stage1"), o.Stage1 with { Seed = o.Seed }) { Log = log, DrawMetrics = MetricsChart.FromCsv }.Run(resume: true, StageProgress("stage 1", log));
        clock.End();

        clock.Begin("stage 2 (captions, frozen OPT)");
        if (!Have("init-generation/model.safetensors")) AssembleGeneration(P("init-generation"), P("vit"), P("opt"), optConfig, o);
        log?.Invoke("stage 2: captions only, frozen language model");
        var described = FirstCaptions(train);
        string s2 = new Trainer(TrainStage.Stage2, P("init-generation"), train, P("stage2"), o.Stage2 with { Seed = o.Seed }) { QFormerFrom = s1, PromptText = described, Log = log, DrawMetrics = MetricsChart.FromCsv }.Run(resume: true, StageProgress("stage 2", log));
        clock.End();
        string model = P("model");
        Export(s2, Path.Combine(model, "generation"));
        Export(s1, Path.Combine(model, "retrieval"));
        File.Copy(P("data/" + SceneDataset.TrainKeysFile), Path.Combine(model, SceneDataset.TrainKeysFile), true);
        if (!o.Evaluate) return new Result(model, null, null, null, null, clock.Timings);

        clock.Begin("evaluation", redone: true);
        log?.Invoke("evaluating on the test split");
        var metrics = DemoEvaluation.Evaluate(Path.Combine(model, "generation"), Path.Combine(model, "retrieval"), P("test-data"), log: log);
        clock.End();
        log?.Invoke($"evaluating on scenes that hold the held-out {Scene.HeldOut.Color} {Scene.HeldOut.Shape}".ToLowerInvariant());
        var holdout = DemoEvaluation.Evaluate(Path.Combine(model, "generation"), Path.Combine(model, "retrieval"),
            P("test-data"), split: "holdout", log: log);
        DemoMetrics? ablation = null;
        if (o.Ablation)
        {
            // Timed apart: the ablation is not part of building the demo model.
            var ablationWatch = System.Diagnostics.Stopwatch.StartNew();
            log?.Invoke("ablation: stage 2 from a random Q-Former, without stage 1");
            string a2 = new Trainer(TrainStage.Stage2, P("init-generation"), train, P("stage2-no-stage1"), o.Stage2 with { Seed = o.Seed }) { PromptText = described, Log = log, DrawMetrics = MetricsChart.FromCsv }.Run(resume: true, StageProgress("ablation stage 2", log));
            Export(a2, P("model-no-stage1/generation"));
            ablation = DemoEvaluation.Evaluate(P("model-no-stage1/generation"), null, P("test-data"), log: log);
            log?.Invoke($"ablation took {ablationWatch.Elapsed:mm\\:ss}");
        }
        string report = DemoReport.Write(workDir, o.Seed, o.TestSeed, metrics, holdout, ablation, clock.Timings,
            o.Stage2.PromptAlignment);
        return new Result(model, metrics, holdout, ablation, report, clock.Timings);
    }

    /// <summary>
    /// Each caption's scene described in its first phrasing (the first caption of its image, as SceneDataset writes
    /// them): the text stage 2 aligns the soft prompt with, one per image, since the queries cannot know which
    /// phrasing a caption will take.
    /// </summary>
    public static Func<string, string> FirstCaptions(ImageTextData data)
    {
        var first = new Dictionary<string, string>();
        foreach (var group in data.Pairs.GroupBy(p => p.Image))
            foreach (var p in group) first[p.Caption] = group.First().Caption;
        return caption => first.TryGetValue(caption, out var d) ? d : caption;
    }

    /// <summary>
    /// Copies a checkpoint's model files (config, tokenizer, preprocessor), leaving optimizer and trainer state behind,
    /// with the weights stored in float16 (half the size; loading upcasts them to float32 on CPU, so the exported
    /// model is what gets evaluated and shipped).
    /// </summary>
    public static void Export(string checkpoint, string dest)
    {
        Directory.CreateDirectory(dest);
        string[] notCopied = ["optimizer.safetensors", "trainer_state.json", "itg_head.safetensors", "model.safetensors"];
        foreach (var f in Directory.GetFiles(checkpoint).Where(f => !notCopied.Contains(Path.GetFileName(f))))
            File.Copy(f, Path.Combine(dest, Path.GetFileName(f)), true);
        using (var file = SafetensorsFile.Open(Path.Combine(checkpoint, "model.safetensors")))
        {
            var tensors = file.Entries.Select(e =>
            {
                var t = file.ReadTensor(e.Name);
                return new KeyValuePair<string, Tensor>(e.Name, t.is_floating_point() ? t.to(ScalarType.Float16) : t);
            }).ToList();
            SafetensorsWriter.Save(Path.Combine(dest, "model.safetensors"), tensors);
            foreach (var (_, t) in tensors) t.Dispose();
        }
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(dest, "config.json")))!.AsObject();
        config["torch_dtype"] = "float16";
        File.WriteAllText(Path.Combine(dest, "config.json"), config.ToJsonString(Indented));
    }

    /// <summary>
    /// Time per phase, kept in timings.json of the work folder, so that a run continued after a crash or Ctrl-C still
    /// reports what every phase took: a finished phase is skipped when the run starts again and keeps its time, an
    /// interrupted one adds the time it had reached (written at every progress message, so a crash loses at most one
    /// interval), and a phase that is always redone (the evaluation) counts its latest run.
    /// </summary>
    private sealed class PhaseClock(string path)
    {
        private readonly List<(string Phase, double Seconds, bool Done)> _phases = File.Exists(path)
            ? [.. JsonNode.Parse(File.ReadAllText(path))!.AsArray().Select(x => (x!["phase"]!.GetValue<string>(), x["seconds"]!.GetValue<double>(), x["done"]!.GetValue<bool>()))]
            : [];
        private readonly System.Diagnostics.Stopwatch _watch = new();
        private int _at = -1;
        private double _before;

        public IReadOnlyList<(string Phase, TimeSpan Time)> Timings => [.. _phases.Where(x => x.Done).Select(x => (x.Phase, TimeSpan.FromSeconds(x.Seconds)))];

        public void Begin(string phase, bool redone = false)
        {
            _at = _phases.FindIndex(x => x.Phase == phase);
            if (_at >= 0 && _phases[_at].Done && !redone)
            {
                _at = -1;
                return;
            }
            if (_at < 0)
            {
                _phases.Add((phase, 0, false));
                _at = _phases.Count - 1;
            }
            _before = _phases[_at].Done ? 0 : _phases[_at].Seconds;
            _phases[_at] = (phase, _before, false);
            _watch.Restart();
        }

        public void Tick() => Save(done: false);

        public void End()
        {
            Save(done: true);
            _at = -1;
        }

        private void Save(bool done)
        {
            if (_at < 0) return;
            _phases[_at] = (_phases[_at].Phase, _before + _watch.Elapsed.TotalSeconds, done);
            string tmp = path + ".tmp";
            File.WriteAllText(tmp, new JsonArray([.. _phases.Select(x => (JsonNode)new JsonObject { ["phase"] = x.Phase, ["seconds"] = x.Seconds, ["done"] = x.Done })]).ToJsonString(Indented));
            File.Move(tmp, path, overwrite: true);
        }
    }

    /// <summary>A pre-training's loss per step: logged every tenth of the run, written as CSV and PNG at the end.</summary>
    private sealed class Curve(string path, string name, int steps, Action<string>? log)
    {
        private readonly List<double> _losses = [];

        public void Add(int step, double loss)
        {
            _losses.Add(loss);
            int every = Math.Max(1, steps / 10);
            if (step % every == 0) log?.Invoke($"{name} step {step}/{steps}: loss {_losses.TakeLast(every).Average():F4}");
        }

        public void Save()
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllLines(path + ".csv", ["step,loss", .. _losses.Select((l, i) => FormattableString.Invariant($"{i + 1},{l:R}"))]);
            // Averaged over windows of 1 % of the run, for a readable plot.
            int w = Math.Max(1, _losses.Count / 100);
            var steps = Enumerable.Range(0, _losses.Count / w).Select(i => (double)(i + 1) * w).ToArray();
            var mean = Enumerable.Range(0, _losses.Count / w).Select(i => _losses.Skip(i * w).Take(w).Average()).ToArray();
            if (steps.Length > 0) MetricsPlot.Draw(path + ".png", steps, [("loss", mean)]);
        }
    }

    private static Action<TrainProgress> StageProgress(string name, Action<string>? log) => p =>
    {
        if (p.Step % Math.Max(1, p.MaxSteps / 10) == 0 || p.Step == p.MaxSteps)
            log?.Invoke($"{name} step {p.Step}/{p.MaxSteps}: {string.Join(", ", p.Losses.Select(kv => $"{kv.Key} {kv.Value:F4}"))} ({p.PairsPerSecond:F0} pairs/s, {p.Eta:mm\\:ss} left)");
    };

    private static JsonObject VisionJson(string vitDir) => JsonNode.Parse(File.ReadAllText(Path.Combine(vitDir, "vision_config.json")))!.AsObject();

    private static JsonObject QFormerJson(Options o, int vocab, int visionHidden, bool textInput) => new()
    {
        ["model_type"] = "blip_2_qformer", ["hidden_size"] = o.QFormerHidden, ["num_hidden_layers"] = o.QFormerLayers, ["num_attention_heads"] = o.QFormerHeads,
        ["intermediate_size"] = 4 * o.QFormerHidden, ["cross_attention_frequency"] = 1, ["encoder_hidden_size"] = visionHidden,
        // No dropout: at this scale it slowed stage 1 down (ITC 3.37 → 2.54 at step 180 without it, same seed and data).
        ["hidden_dropout_prob"] = 0.0, ["attention_probs_dropout_prob"] = 0.0,
        ["max_position_embeddings"] = 64, ["vocab_size"] = vocab, ["use_qformer_text_input"] = textInput,
    };

    private static void WritePreprocessor(string dir, int size) =>
        File.WriteAllText(Path.Combine(dir, "preprocessor_config.json"), new JsonObject
        {
            ["image_processor_type"] = "BlipImageProcessor", ["do_convert_rgb"] = true, ["do_normalize"] = true, ["do_rescale"] = true, ["do_resize"] = true,
            ["image_mean"] = new JsonArray(0.48145466, 0.4578275, 0.40821073), ["image_std"] = new JsonArray(0.26862954, 0.26130258, 0.27577711),
            ["resample"] = 3, ["rescale_factor"] = 1.0 / 255, ["size"] = new JsonObject { ["height"] = size, ["width"] = size },
        }.ToJsonString(Indented));

    private static void CopyVision(nn.Module model, string vitDir)
    {
        using var file = SafetensorsFile.Open(Path.Combine(vitDir, "vision_model.safetensors"));
        using var noGrad = no_grad();
        foreach (var (name, p) in model.named_parameters().Where(p => p.name.StartsWith("vision_model.")))
        {
            using var t = file.ReadTensor(name);
            p.copy_(t);
        }
    }

    private static void Save(nn.Module model, string dir) => SafetensorsWriter.SaveModule(Path.Combine(dir, "model.safetensors"), model);

    /// <summary>A Blip2ForImageTextRetrieval folder: the pre-trained ViT, a random Q-Former with its text path and heads.</summary>
    public static void AssembleRetrieval(string dir, string vitDir, string tokenizerDir, int vocab, Options o)
    {
        Directory.CreateDirectory(dir);
        var vision = VisionJson(vitDir);
        var config = new JsonObject
        {
            ["architectures"] = new JsonArray("Blip2ForImageTextRetrieval"), ["model_type"] = "blip-2", ["num_query_tokens"] = o.Queries,
            ["image_text_hidden_size"] = 64, ["vision_config"] = vision,
            ["qformer_config"] = QFormerJson(o, vocab, vision["hidden_size"]!.GetValue<int>(), textInput: true),
            ["text_config"] = new JsonObject { ["model_type"] = "opt" },
        };
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString(Indented));
        foreach (var f in Directory.GetFiles(tokenizerDir)) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)), true);
        WritePreprocessor(dir, vision["image_size"]!.GetValue<int>());
        var parsed = Blip2Config.Load(dir, new ConfigWarnings());
        using var model = new Blip2ForImageTextRetrieval(parsed, ModelOptions.Cpu);
        ModelInit.Randomize(model, o.Seed);
        CopyVision(model, vitDir);
        Save(model, dir);
    }

    /// <summary>A Blip2ForConditionalGeneration folder: the pre-trained ViT and OPT, a random Q-Former and projection (legacy prefix path).</summary>
    public static void AssembleGeneration(string dir, string vitDir, string optDir, JsonObject optConfig, Options o)
    {
        Directory.CreateDirectory(dir);
        var vision = VisionJson(vitDir);
        var text = (JsonObject)optConfig.DeepClone();
        text.Remove("architectures");
        var config = new JsonObject
        {
            ["architectures"] = new JsonArray("Blip2ForConditionalGeneration"), ["model_type"] = "blip-2", ["num_query_tokens"] = o.Queries,
            ["vision_config"] = vision, ["qformer_config"] = QFormerJson(o, 64, vision["hidden_size"]!.GetValue<int>(), textInput: false),
            ["text_config"] = text, ["use_decoder_only_language_model"] = true,
        };
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString(Indented));
        foreach (var f in Directory.GetFiles(optDir).Where(f => !f.EndsWith(".safetensors") && Path.GetFileName(f) != "config.json"))
            File.Copy(f, Path.Combine(dir, Path.GetFileName(f)), true);
        var bpe = Tokenizer.FromPretrained(optDir);
        int newline = bpe.TokenToId("Ċ");
        File.WriteAllText(Path.Combine(dir, "generation_config.json"), new JsonObject { ["bos_token_id"] = 2, ["eos_token_id"] = newline, ["pad_token_id"] = 1 }.ToJsonString(Indented));
        text["eos_token_id"] = newline; // stop on "\\n", as the official OPT conversions do
        config["text_config"] = text;
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString(Indented));
        WritePreprocessor(dir, vision["image_size"]!.GetValue<int>());
        var parsed = Blip2Config.Load(dir, new ConfigWarnings());
        using var model = new Blip2ForConditionalGeneration(parsed, ModelOptions.Cpu);
        ModelInit.Randomize(model, o.Seed);
        CopyVision(model, vitDir);
        using (var reader = CheckpointReader.Open(optDir))
        using (no_grad())
        {
            var ours = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            foreach (var name in reader.Names)
            {
                using var t = reader.Read(name);
                ours["language_model." + name].copy_(t);
            }
        }
        Save(model, dir);
    }
}
