using System.Text.Json;
using System.Text.Json.Nodes;
using Blip2Sharp.Configuration;
using Blip2Sharp.Loading;
using Blip2Sharp.Modeling;
using static TorchSharp.torch;

namespace Blip2Sharp.Bench;

/// <summary>
/// Writes a full checkpoint folder in the Hugging Face layout for an official architecture with random weights:
/// config.json (the official one), model.safetensors, processor and generation files, and a synthetic byte-level
/// BPE tokenizer (the 256 byte symbols, OPT's special ids, "\n" at the official stop id, &lt;image&gt; at
/// image_token_index). Nothing is downloaded; the result runs through `blip2 caption` like a real checkpoint.
/// </summary>
public static class RandomCheckpoint
{
    public static void Write(string configDir, string outDir, long seed = 0)
    {
        Directory.CreateDirectory(outDir);
        var config = Blip2Config.Load(configDir, new ConfigWarnings());
        if (config.TextConfig is not OptConfig opt) throw new NotSupportedException("random checkpoints are written for OPT architectures only.");
        File.Copy(Path.Combine(configDir, "config.json"), Path.Combine(outDir, "config.json"), overwrite: true);
        using (var model = new Blip2ForConditionalGeneration(config, ModelOptions.Cpu))
        {
            ModelInit.Randomize(model, seed);
            SafetensorsWriter.SaveModule(Path.Combine(outDir, "model.safetensors"), model);
        }
        int size = config.VisionConfig.ImageSize;
        WriteJson(outDir, "preprocessor_config.json", new JsonObject
        {
            ["do_convert_rgb"] = true, ["do_normalize"] = true, ["do_rescale"] = true, ["do_resize"] = true,
            ["image_mean"] = new JsonArray(0.48145466, 0.4578275, 0.40821073), ["image_std"] = new JsonArray(0.26862954, 0.26130258, 0.27577711),
            ["image_processor_type"] = "BlipImageProcessor", ["processor_class"] = "Blip2Processor", ["resample"] = 3,
            ["rescale_factor"] = 1.0 / 255, ["size"] = new JsonObject { ["height"] = size, ["width"] = size },
        });
        WriteJson(outDir, "processor_config.json", new JsonObject { ["num_query_tokens"] = config.NumQueryTokens, ["processor_class"] = "Blip2Processor" });
        int newline = opt.EosTokenId?[0] ?? 50118;
        WriteJson(outDir, "generation_config.json", new JsonObject { ["bos_token_id"] = 2, ["eos_token_id"] = newline, ["pad_token_id"] = 1 });

        // Synthetic vocabulary: specials 0–3, the 256 byte symbols, "\n" (Ċ) moved to the official stop id, fillers up to <image>.
        int imageId = config.ImageTokenIndex ?? opt.VocabSize;
        var vocab = new JsonObject { ["<s>"] = 0, ["<pad>"] = 1, ["</s>"] = 2, ["<unk>"] = 3 };
        var byteSymbols = Blip2Sharp.Processing.Tokenizers.ByteLevelBpeTokenizer.ByteSymbols;
        int next = 4;
        foreach (var sym in byteSymbols)
        {
            if (sym == "Ċ") continue;
            vocab[sym] = next++;
        }
        for (; next < imageId; next++) vocab[next == newline ? "Ċ" : $"<filler_{next}>"] = next;
        if (!vocab.ContainsKey("Ċ")) vocab["Ċ"] = next++;
        WriteJson(outDir, "vocab.json", vocab);
        File.WriteAllText(Path.Combine(outDir, "merges.txt"), "#version: 0.2\nĠ t\nĠ a\nh e\n");
        WriteJson(outDir, "added_tokens.json", new JsonObject { ["<image>"] = imageId });
        JsonObject Token(string s, bool normalized = true) => new() { ["content"] = s, ["lstrip"] = false, ["normalized"] = normalized, ["rstrip"] = false, ["single_word"] = false, ["special"] = true };
        WriteJson(outDir, "tokenizer_config.json", new JsonObject
        {
            ["add_bos_token"] = true, ["add_prefix_space"] = false, ["bos_token"] = "</s>", ["eos_token"] = "</s>", ["pad_token"] = "<pad>", ["unk_token"] = "<unk>",
            ["clean_up_tokenization_spaces"] = false, ["errors"] = "replace", ["tokenizer_class"] = "GPT2Tokenizer",
            ["additional_special_tokens"] = new JsonArray("<image>"),
            ["added_tokens_decoder"] = new JsonObject { ["1"] = Token("<pad>"), ["2"] = Token("</s>"), ["3"] = Token("<unk>"), [imageId.ToString()] = Token("<image>", false) },
        });
        WriteJson(outDir, "special_tokens_map.json", new JsonObject
        {
            ["bos_token"] = "</s>", ["eos_token"] = "</s>", ["pad_token"] = "<pad>", ["unk_token"] = "<unk>", ["additional_special_tokens"] = new JsonArray("<image>"),
        });
    }

    private static void WriteJson(string dir, string name, JsonNode node) =>
        File.WriteAllText(Path.Combine(dir, name), node.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
}
