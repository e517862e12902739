using System.Text.Json.Nodes;
using Blip2Sharp.Configuration;
using Blip2Sharp.Loading;
using Blip2Sharp.Modeling;
using Blip2Sharp.Modeling.Vision;
using Blip2Sharp.Processing;
using Blip2Sharp.Training;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Blip2Sharp.Demo;

/// <summary>
/// The demo's frozen image encoder, pre-trained on scenes without any text: a small ViT whose pooled output predicts,
/// for each of the three columns, whether an object is there and its shape, colour, size and row. Only the ViT is kept
/// (saved under vision_model.*, the name BLIP-2 checkpoints use); the attribute heads are discarded.
/// </summary>
public static class VisionPretraining
{
    public sealed record Options
    {
        public int ImageSize { get; init; } = 64;
        public int PatchSize { get; init; } = 8;
        public int HiddenSize { get; init; } = 128;
        public int Layers { get; init; } = 4;
        public int Heads { get; init; } = 4;
        public int MlpSize { get; init; } = 512;
        public int Steps { get; init; } = 1500;
        public int BatchSize { get; init; } = 32;
        public double Lr { get; init; } = 1e-3;
        public long Seed { get; init; } = 1;
    }

    // Per column: presence (2), shape (3), colour (6), size (2), row (3).
    private static readonly int[] Heads = [2, 3, Scene.Colors.Length, 2, 3];
    private static int PerColumn => Heads.Sum();

    public static Blip2VisionConfig Config(Options o) => new()
    {
        ImageSize = o.ImageSize, PatchSize = o.PatchSize, HiddenSize = o.HiddenSize, NumHiddenLayers = o.Layers,
        NumAttentionHeads = o.Heads, IntermediateSize = o.MlpSize,
    };

    /// <summary>Targets [B, 3 columns, 5 attributes]; −100 where an attribute does not apply (no object in the column).</summary>
    public static long[,,] Targets(IReadOnlyList<Scene> scenes)
    {
        var t = new long[scenes.Count, 3, Heads.Length];
        for (int b = 0; b < scenes.Count; b++)
        {
            for (int c = 0; c < 3; c++)
            {
                var o = scenes[b].Objects.FirstOrDefault(x => x.Column == c);
                t[b, c, 0] = o is null ? 0 : 1;
                t[b, c, 1] = o is null ? -100 : (int)o.Shape;
                t[b, c, 2] = o is null ? -100 : Array.FindIndex(Scene.Colors, x => x.Name == o.Color);
                t[b, c, 3] = o is null ? -100 : o.Large ? 1 : 0;
                t[b, c, 4] = o is null ? -100 : o.Row;
            }
        }
        return t;
    }

    /// <summary>Trains from scratch on freshly rendered scenes; returns the mean loss of the first and last 10 % of steps.</summary>
    public static (double First, double Last) Train(Blip2VisionModel vit, Options o, Action<int, double>? progress = null)
    {
        manual_seed(o.Seed);
        ModelInit.Randomize(vit, o.Seed);
        var head = new Modeling.Layers.Linear(o.HiddenSize, 3 * PerColumn, true, ModelOptions.Cpu);
        ModelInit.Randomize(head, o.Seed + 1);
        var parameters = vit.named_parameters().Select(p => ("vit." + p.name, p.parameter)).Concat(head.named_parameters().Select(p => ("head." + p.name, p.parameter)));
        var processor = new BlipImageProcessor(ImageProcessorConfig.ForSize(o.ImageSize));
        var rng = new Random((int)o.Seed);
        vit.train();
        var result = PretrainLoop.Run(parameters, o.Steps, o.Lr, 0.05, _ =>
        {
            var scenes = Enumerable.Range(0, o.BatchSize).Select(_ => Scene.Random(rng)).ToList();
            var images = scenes.Select(s => ImageDecoder.Decode(s.RenderPng(o.ImageSize), "scene")).ToList();
            var pooled = vit.Forward(processor.Preprocess(images)).PoolerOutput;         // [B, D]
            var logits = head.forward(pooled).view(o.BatchSize, 3, PerColumn);          // [B, 3, Σ classes]
            var targets = tensor(Targets(scenes)).view(o.BatchSize, 3, Heads.Length);
            Tensor loss = zeros([]);
            int offset = 0;
            for (int k = 0; k < Heads.Length; k++)
            {
                var l = logits[.., .., offset..(offset + Heads[k])].reshape(-1, Heads[k]);
                loss = Modeling.Layers.Scalars.Add(loss, F.cross_entropy(l, targets[.., .., k].reshape(-1), ignore_index: -100));
                offset += Heads[k];
            }
            return loss;
        }, progress);
        vit.eval();
        head.Dispose();
        return result;
    }

    /// <summary>Writes vision_config.json and vision_model.safetensors (tensor names vision_model.*).</summary>
    public static void Save(Blip2VisionModel vit, string dir)
    {
        Directory.CreateDirectory(dir);
        var c = vit.Config;
        File.WriteAllText(Path.Combine(dir, "vision_config.json"), new JsonObject
        {
            ["model_type"] = "blip_2_vision_model", ["hidden_size"] = c.HiddenSize, ["intermediate_size"] = c.IntermediateSize,
            ["num_hidden_layers"] = c.NumHiddenLayers, ["num_attention_heads"] = c.NumAttentionHeads, ["image_size"] = c.ImageSize,
            ["patch_size"] = c.PatchSize, ["layer_norm_eps"] = c.LayerNormEps, ["hidden_act"] = c.HiddenAct,
        }.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
        SafetensorsWriter.SaveModule(Path.Combine(dir, "vision_model.safetensors"), vit, "vision_model.");
    }

    public static Blip2VisionModel Load(string dir)
    {
        var config = ConfigJson.Bind<Blip2VisionConfig>(ConfigJson.ReadObject(Path.Combine(dir, "vision_config.json")), "vision_config.json", new ConfigWarnings());
        var vit = new Blip2VisionModel(config, ModelOptions.Cpu);
        using var file = SafetensorsFile.Open(Path.Combine(dir, "vision_model.safetensors"));
        using var noGrad = no_grad();
        foreach (var (name, p) in vit.named_parameters())
        {
            using var t = file.ReadTensor("vision_model." + name);
            p.copy_(t);
        }
        vit.eval();
        return vit;
    }
}
