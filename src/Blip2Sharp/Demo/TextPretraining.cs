using System.Text.Json.Nodes;
using Blip2Sharp.Configuration;
using Blip2Sharp.Loading;
using Blip2Sharp.Modeling;
using Blip2Sharp.Modeling.Opt;
using Blip2Sharp.Processing.Tokenizers;
using Blip2Sharp.Training;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Blip2Sharp.Demo;

/// <summary>
/// The demo's frozen language model, pre-trained on text only: scenes described in words, followed by questions and
/// answers about them ("a red circle to the left of a blue square. Question: what color is the circle? Answer: red"),
/// and plain captions ending in "\n". Saved as an OPTForCausalLM folder in the Hugging Face layout.
/// </summary>
public static class TextPretraining
{
    public sealed record Options
    {
        public int HiddenSize { get; init; } = 128;
        public int Layers { get; init; } = 4;
        public int Heads { get; init; } = 4;
        public int FfnDim { get; init; } = 512;
        public int Steps { get; init; } = 1500;
        public int BatchSize { get; init; } = 32;
        public double Lr { get; init; } = 1e-3;
        public long Seed { get; init; } = 1;
    }

    /// <summary>Texts of the scene world: each scene's captions, and a caption with each of its questions answered.</summary>
    public static List<string> Corpus(int scenes, long seed)
    {
        var rng = new Random((int)seed);
        var texts = new List<string>();
        for (int i = 0; i < scenes; i++)
        {
            var scene = Scene.Random(rng);
            var captions = scene.Captions();
            foreach (var c in captions) texts.Add(c + "\n");
            foreach (var (_, q, a) in scene.Questions(rng))
                texts.Add($"{captions[rng.Next(captions.Count)]}. Question: {q} Answer: {a}\n");
        }
        return texts;
    }

    public static OptConfig Config(Options o, int vocab) => new()
    {
        VocabSize = (vocab + 7) / 8 * 8,
        HiddenSize = o.HiddenSize,
        NumHiddenLayers = o.Layers,
        NumAttentionHeads = o.Heads,
        FfnDim = o.FfnDim,
        MaxPositionEmbeddings = 128,
        Dropout = 0.0,
        EosTokenId = [2],
    };

    /// <summary>Trains from scratch; returns the mean loss of the first and the last 10 % of the steps.</summary>
    public static (double First, double Last) Train(OptForCausalLM lm, Tokenizer tokenizer, IReadOnlyList<string> texts, Options o, Action<int, double>? progress = null)
    {
        manual_seed(o.Seed);
        ModelInit.Randomize(lm, o.Seed);
        var rng = new Random((int)o.Seed);
        lm.train();
        var result = PretrainLoop.Run(lm.named_parameters().Select(p => (p.name, p.parameter)), o.Steps, o.Lr, 0.01, _ =>
        {
            var batch = Enumerable.Range(0, o.BatchSize).Select(_ => tokenizer.Encode(texts[rng.Next(texts.Count)]).Ids.Take(lm.Config.MaxPositionEmbeddings).ToList()).ToList();
            var (ids, mask) = tokenizer.PadRight(batch);
            var logits = lm.Forward(lm.EmbedTokens(ids), mask).Logits;                 // [B, T, V]
            var labels = ids.masked_fill(mask.eq(0), -100);
            return F.cross_entropy(logits[.., ..^1, ..].reshape(-1, logits.shape[^1]), labels[.., 1..].reshape(-1), ignore_index: -100);
        }, progress);
        lm.eval();
        return result;
    }

    /// <summary>Writes config.json (OPTForCausalLM) and model.safetensors; the tokenizer files go beside them.</summary>
    public static void Save(OptForCausalLM lm, string dir)
    {
        Directory.CreateDirectory(dir);
        var c = lm.Config;
        File.WriteAllText(Path.Combine(dir, "config.json"), new JsonObject
        {
            ["architectures"] = new JsonArray("OPTForCausalLM"), ["model_type"] = "opt", ["vocab_size"] = c.VocabSize, ["hidden_size"] = c.HiddenSize,
            ["num_hidden_layers"] = c.NumHiddenLayers, ["num_attention_heads"] = c.NumAttentionHeads, ["ffn_dim"] = c.FfnDim,
            ["max_position_embeddings"] = c.MaxPositionEmbeddings, ["word_embed_proj_dim"] = c.WordEmbedProjDim, ["do_layer_norm_before"] = c.DoLayerNormBefore,
            ["dropout"] = c.Dropout, ["activation_function"] = c.ActivationFunction, ["bos_token_id"] = 2, ["eos_token_id"] = 2, ["pad_token_id"] = 1,
            ["torch_dtype"] = "float32",
        }.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
        SafetensorsWriter.SaveModule(Path.Combine(dir, "model.safetensors"), lm);
    }

    /// <summary>Loads an OPTForCausalLM folder written by <see cref="Save"/> (or by transformers) strictly.</summary>
    public static OptForCausalLM Load(string dir)
    {
        var json = ConfigJson.ReadObject(Path.Combine(dir, "config.json"));
        var config = ConfigJson.Bind<OptConfig>(json, Path.Combine(dir, "config.json"), new ConfigWarnings(), ConfigJson.PretrainedConfigKeys);
        var lm = new OptForCausalLM(config, ModelOptions.Cpu);
        using var reader = CheckpointReader.Open(dir);
        WeightLoader.Load(lm, reader, new WeightMapping { Aliases = OptForCausalLM.TiedAliases });
        lm.eval();
        return lm;
    }
}
