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
        public int ImageSize { get; init; } = 64;
        public VisionPretraining.Options Vision { get; init; } = new();
        public TextPretraining.Options Text { get; init; } = new();
        public int QFormerHidden { get; init; } = 128;
        public int QFormerLayers { get; init; } = 2;
        public int QFormerHeads { get; init; } = 4;
        public int Queries { get; init; } = 8;
        public TrainConfig Stage1 { get; init; } = new() { MaxSteps = 1500, BatchSize = 32, Lr = 5e-4, WarmupSteps = 100, SaveEvery = 500, LogEvery = 25 };
        public TrainConfig Stage2 { get; init; } = new() { MaxSteps = 1500, BatchSize = 32, Lr = 5e-4, WarmupSteps = 100, SaveEvery = 500, LogEvery = 25 };
    }

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>Runs every step into workDir; returns (stage-1 retrieval checkpoint, stage-2 generation checkpoint).</summary>
    public static (string Retrieval, string Generation) Run(string workDir, Options o, Action<string>? log = null)
    {
        Directory.CreateDirectory(workDir);
        string P(string name) => Path.Combine(workDir, name);
        log?.Invoke("rendering scenes");
        SceneDataset.Write(P("data"), o.Seed, o.TrainScenes, o.ValScenes, o.TestScenes, o.ImageSize);

        var words = SceneVocabulary.Words(seed: o.Seed);
        SceneVocabulary.WriteBpe(P("opt"), words);
        SceneVocabulary.WriteWordPiece(P("qformer-tokenizer"), words);

        log?.Invoke("pre-training the language model on text");
        var bpe = Tokenizer.FromPretrained(P("opt"));
        using (var lm = new OptForCausalLM(TextPretraining.Config(o.Text, bpe.Count), ModelOptions.Cpu))
        {
            var (a, b) = TextPretraining.Train(lm, bpe, TextPretraining.Corpus(o.TrainScenes, o.Seed), o.Text);
            log?.Invoke($"language model loss {a:F3} → {b:F3}");
            TextPretraining.Save(lm, P("opt"));
        }
        log?.Invoke("pre-training the image encoder on scene attributes");
        var vision = VisionPretraining.Config(o.Vision with { ImageSize = o.ImageSize });
        using (var vit = new Modeling.Vision.Blip2VisionModel(vision, ModelOptions.Cpu))
        {
            var (a, b) = VisionPretraining.Train(vit, o.Vision with { ImageSize = o.ImageSize });
            log?.Invoke($"image encoder loss {a:F3} → {b:F3}");
            VisionPretraining.Save(vit, P("vit"));
        }

        var wordPiece = Tokenizer.FromPretrained(P("qformer-tokenizer"));
        var optConfig = JsonNode.Parse(File.ReadAllText(P("opt/config.json")))!.AsObject();
        AssembleRetrieval(P("init-retrieval"), P("vit"), P("qformer-tokenizer"), wordPiece.Count, o);
        log?.Invoke("stage 1: ITC + ITM + ITG");
        string s1 = new Trainer(TrainStage.Stage1, P("init-retrieval"), ImageTextData.Load(P("data/train.jsonl")), P("stage1"), o.Stage1 with { Seed = o.Seed }) { Log = log }.Run(resume: false);

        AssembleGeneration(P("init-generation"), P("vit"), P("opt"), optConfig, o);
        log?.Invoke("stage 2: captions only, frozen language model");
        string s2 = new Trainer(TrainStage.Stage2, P("init-generation"), ImageTextData.Load(P("data/train.jsonl")), P("stage2"), o.Stage2 with { Seed = o.Seed }) { QFormerFrom = s1, Log = log }.Run(resume: false);
        return (s1, s2);
    }

    private static JsonObject VisionJson(string vitDir) => JsonNode.Parse(File.ReadAllText(Path.Combine(vitDir, "vision_config.json")))!.AsObject();

    private static JsonObject QFormerJson(Options o, int vocab, int visionHidden, bool textInput) => new()
    {
        ["model_type"] = "blip_2_qformer", ["hidden_size"] = o.QFormerHidden, ["num_hidden_layers"] = o.QFormerLayers, ["num_attention_heads"] = o.QFormerHeads,
        ["intermediate_size"] = 2 * o.QFormerHidden, ["cross_attention_frequency"] = 1, ["encoder_hidden_size"] = visionHidden,
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
