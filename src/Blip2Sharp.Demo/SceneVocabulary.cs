using System.Text.Json;
using System.Text.Json.Nodes;
using Blip2Sharp.Processing.Tokenizers;

namespace Blip2Sharp.Demo;

/// <summary>
/// Tokenizer files for the scene world, in the layouts the official checkpoints use, so the demo models load like
/// any BLIP-2 checkpoint: a GPT-2 byte-level BPE for the OPT language model in which every word of the scene
/// vocabulary (with and without the leading space) is one token, and a BERT WordPiece vocabulary for the Q-Former
/// with [DEC] added as its bos token.
/// </summary>
public static class SceneVocabulary
{
    /// <summary>Every word the scene captions and questions use, plus the prompt words.</summary>
    public static SortedSet<string> Words(int scenes = 2000, long seed = 0)
    {
        var words = new SortedSet<string>(StringComparer.Ordinal) { "question", "answer", "short", "Question", "Answer", "a", "photo", "of" };
        var rng = new Random((int)seed);
        for (int i = 0; i < scenes; i++)
        {
            var scene = Scene.Random(rng);
            foreach (var text in scene.Captions().Concat(scene.Questions(rng).SelectMany(q => new[] { q.Question, q.Answer })))
                foreach (var w in text.Split(' ', StringSplitOptions.RemoveEmptyEntries)) words.Add(w.Trim(',', '?', ':', '.'));
        }
        foreach (var (name, _) in Scene.Colors) words.Add(name);
        foreach (var (name, _) in Scene.Backgrounds) foreach (var w in name.Split(' ')) words.Add(w);
        words.Remove("");
        return words;
    }

    /// <summary>vocab.json, merges.txt, tokenizer_config.json and special_tokens_map.json of a GPT2Tokenizer (OPT layout: &lt;/s&gt; as bos).</summary>
    public static void WriteBpe(string dir, IEnumerable<string> words)
    {
        Directory.CreateDirectory(dir);
        var vocab = new Dictionary<string, int> { ["<s>"] = 0, ["<pad>"] = 1, ["</s>"] = 2, ["<unk>"] = 3 };
        void Add(string t)
        {
            if (!vocab.ContainsKey(t)) vocab[t] = vocab.Count;
        }
        foreach (var s in ByteLevelBpeTokenizer.ByteSymbols) Add(s);
        // Merges are found by running BPE itself: while a word is still several tokens, the next merge joins its first
        // two. A new merge ranks after every earlier one, so words already whole stay whole.
        var merges = new List<string>();
        var ranks = new Dictionary<(string, string), int>();
        List<string> Bpe(string word)
        {
            var t = word.Select(c => c.ToString()).ToList();
            while (t.Count > 1)
            {
                int best = int.MaxValue, at = -1;
                for (int i = 0; i < t.Count - 1; i++)
                    if (ranks.TryGetValue((t[i], t[i + 1]), out int r) && r < best) { best = r; at = i; }
                if (at < 0) break;
                var (x, y) = (t[at], t[at + 1]);
                var merged = new List<string>();
                for (int i = 0; i < t.Count;)
                {
                    if (i < t.Count - 1 && t[i] == x && t[i + 1] == y) { merged.Add(x + y); i += 2; }
                    else merged.Add(t[i++]);
                }
                t = merged;
            }
            return t;
        }
        foreach (var w in words)
        {
            foreach (var form in new[] { w, "Ġ" + w })
            {
                for (var tokens = Bpe(form); tokens.Count > 1; tokens = Bpe(form))
                {
                    ranks[(tokens[0], tokens[1])] = merges.Count;
                    merges.Add($"{tokens[0]} {tokens[1]}");
                    Add(tokens[0] + tokens[1]);
                }
            }
        }
        Add("Ġ.");
        File.WriteAllText(Path.Combine(dir, "vocab.json"), JsonSerializer.Serialize(vocab));
        File.WriteAllLines(Path.Combine(dir, "merges.txt"), ["#version: 0.2", .. merges]);
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), new JsonObject
        {
            ["tokenizer_class"] = "GPT2Tokenizer", ["add_bos_token"] = true, ["add_prefix_space"] = false, ["errors"] = "replace",
            ["bos_token"] = "</s>", ["eos_token"] = "</s>", ["pad_token"] = "<pad>", ["unk_token"] = "<unk>", ["clean_up_tokenization_spaces"] = false,
        }.ToJsonString());
        File.WriteAllText(Path.Combine(dir, "special_tokens_map.json"), new JsonObject
        {
            ["bos_token"] = "</s>", ["eos_token"] = "</s>", ["pad_token"] = "<pad>", ["unk_token"] = "<unk>",
        }.ToJsonString());
    }

    /// <summary>vocab.txt and the BertTokenizer config of the Q-Former (uncased), with [DEC] as an added bos token.</summary>
    public static void WriteWordPiece(string dir, IEnumerable<string> words)
    {
        Directory.CreateDirectory(dir);
        var vocab = new List<string> { "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]" };
        vocab.AddRange("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~".Select(c => c.ToString()));
        vocab.AddRange(Enumerable.Range('a', 26).Select(c => ((char)c).ToString()));
        vocab.AddRange(Enumerable.Range('0', 10).Select(c => ((char)c).ToString()));
        vocab.AddRange(words.Select(w => w.ToLowerInvariant()).Distinct().Where(w => !vocab.Contains(w)));
        File.WriteAllLines(Path.Combine(dir, "vocab.txt"), vocab);
        int dec = vocab.Count;
        File.WriteAllText(Path.Combine(dir, "added_tokens.json"), new JsonObject { ["[DEC]"] = dec }.ToJsonString());
        JsonObject Special(string s) => new() { ["content"] = s, ["lstrip"] = false, ["normalized"] = false, ["rstrip"] = false, ["single_word"] = false, ["special"] = true };
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), new JsonObject
        {
            ["tokenizer_class"] = "BertTokenizer", ["do_lower_case"] = true, ["do_basic_tokenize"] = true, ["tokenize_chinese_chars"] = true,
            ["bos_token"] = "[DEC]", ["cls_token"] = "[CLS]", ["sep_token"] = "[SEP]", ["pad_token"] = "[PAD]", ["unk_token"] = "[UNK]", ["mask_token"] = "[MASK]",
            ["clean_up_tokenization_spaces"] = true,
            ["added_tokens_decoder"] = new JsonObject
            {
                ["0"] = Special("[PAD]"), ["1"] = Special("[UNK]"), ["2"] = Special("[CLS]"), ["3"] = Special("[SEP]"), ["4"] = Special("[MASK]"), [dec.ToString()] = Special("[DEC]"),
            },
        }.ToJsonString());
        File.WriteAllText(Path.Combine(dir, "special_tokens_map.json"), new JsonObject
        {
            ["bos_token"] = "[DEC]", ["cls_token"] = "[CLS]", ["sep_token"] = "[SEP]", ["pad_token"] = "[PAD]", ["unk_token"] = "[UNK]", ["mask_token"] = "[MASK]",
        }.ToJsonString());
    }
}
