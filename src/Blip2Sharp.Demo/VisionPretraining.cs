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
/// The demo's frozen image encoder, pre-trained on scenes without any text. Patches are the scene's cells (image size
/// = 3 × patch size), and each patch token learns to tell whether an object stands in its cell and its shape, colour
/// and size; the class token learns how many objects there are. Only the ViT is kept (saved under vision_model.*,
/// the name BLIP-2 checkpoints use); the attribute heads are discarded.
/// </summary>
public static class VisionPretraining
{
    public sealed record Options
    {
        public int ImageSize { get; init; } = 96;
        public int PatchSize { get; init; } = 32;
        public int HiddenSize { get; init; } = 128;
        public int Layers { get; init; } = 4;
        public int Heads { get; init; } = 4;
        public int MlpSize { get; init; } = 512;
        public int Steps { get; init; } = 600;
        public int BatchSize { get; init; } = 32;
        public double Lr { get; init; } = 1e-3;
        public long Seed { get; init; } = 1;
    }

    // Per cell: presence (2), shape (3), colour (6), size (2), and the cell's own column (3) and row (3), so that each
    // patch token keeps saying where it is (the Q-Former needs the column to tell left from right).
    private static readonly int[] Heads = [2, 3, Scene.Colors.Length, 2, 3, 3];
    private static int PerCell => Heads.Sum();
    private const int Cells = 9;

    public static Blip2VisionConfig Config(Options o) => new()
    {
        ImageSize = o.ImageSize, PatchSize = o.PatchSize, HiddenSize = o.HiddenSize, NumHiddenLayers = o.Layers,
        NumAttentionHeads = o.Heads, IntermediateSize = o.MlpSize,
    };

    /// <summary>Targets [B, 9 cells (row-major, as the patches), 6 attributes]; −100 where an attribute does not apply (empty cell).</summary>
    public static long[,,] Targets(IReadOnlyList<Scene> scenes)
    {
        var t = new long[scenes.Count, Cells, Heads.Length];
        for (int b = 0; b < scenes.Count; b++)
        {
            for (int cell = 0; cell < Cells; cell++)
            {
                var o = scenes[b].Objects.FirstOrDefault(x => x.Row * 3 + x.Column == cell);
                t[b, cell, 0] = o is null ? 0 : 1;
                t[b, cell, 1] = o is null ? -100 : (int)o.Shape;
                t[b, cell, 2] = o is null ? -100 : Array.FindIndex(Scene.Colors, x => x.Name == o.Color);
                t[b, cell, 3] = o is null ? -100 : o.Large ? 1 : 0;
                t[b, cell, 4] = cell % 3;
                t[b, cell, 5] = cell / 3;
            }
        }
        return t;
    }

    /// <summary>Trains from scratch on freshly rendered scenes; returns the mean loss of the first and last 10 % of steps.</summary>
    public static (double First, double Last) Train(Blip2VisionModel vit, Options o, Action<int, double>? progress = null)
    {
        if (o.ImageSize != 3 * o.PatchSize) throw new ArgumentException($"the demo's ViT needs one patch per scene cell: image size {o.ImageSize} must be 3 × patch size {o.PatchSize}.");
        manual_seed(o.Seed);
        ModelInit.Randomize(vit, o.Seed);
        var cellHead = new Modeling.Layers.Linear(o.HiddenSize, PerCell, true, ModelOptions.Cpu);
        var countHead = new Modeling.Layers.Linear(o.HiddenSize, 4, true, ModelOptions.Cpu);
        ModelInit.Randomize(cellHead, o.Seed + 1);
        ModelInit.Randomize(countHead, o.Seed + 2);
        var parameters = vit.named_parameters().Select(p => ("vit." + p.name, p.parameter))
            .Concat(cellHead.named_parameters().Select(p => ("cell." + p.name, p.parameter)))
            .Concat(countHead.named_parameters().Select(p => ("count." + p.name, p.parameter)));
        var processor = new BlipImageProcessor(ImageProcessorConfig.ForSize(o.ImageSize));
        var rng = new Random((int)o.Seed);
        vit.train();
        var result = PretrainLoop.Run(parameters, o.Steps, o.Lr, 0.05, _ =>
        {
            var scenes = Enumerable.Range(0, o.BatchSize).Select(_ => Scene.Random(rng)).ToList();
            var images = scenes.Select(s => ImageDecoder.Decode(s.RenderPng(o.ImageSize), "scene")).ToList();
            var output = vit.Forward(processor.Preprocess(images));
            var logits = cellHead.forward(output.LastHiddenState[.., 1.., ..]);        // [B, 9, Σ classes]
            var targets = tensor(Targets(scenes));                                      // [B, 9, 6]
            var loss = F.cross_entropy(countHead.forward(output.PoolerOutput), tensor(scenes.Select(s => (long)s.Objects.Count).ToArray()));
            int offset = 0;
            for (int k = 0; k < Heads.Length; k++)
            {
                var l = logits[.., .., offset..(offset + Heads[k])].reshape(-1, Heads[k]);   // [B·9, classes]
                loss = Modeling.Layers.Scalars.Add(loss, F.cross_entropy(l, targets[.., .., k].reshape(-1), ignore_index: -100));
                offset += Heads[k];
            }
            return loss;
        }, progress);
        vit.eval();
        cellHead.Dispose();
        countHead.Dispose();
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
