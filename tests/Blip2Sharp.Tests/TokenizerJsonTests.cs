using System.Text.Json.Nodes;
using Blip2Sharp.Processing.Tokenizers;
using Xunit;

namespace Blip2Sharp.Tests;

/// <summary>
/// A repository with only tokenizer.json: the fixture tokenizers rewritten in the fast format (vocabulary, merges or
/// scored pieces with the precompiled charsmap, added tokens, post-processor) give the same goldens.
/// </summary>
public class TokenizerJsonTests
{
    private static JsonArray AddedTokens(string folder)
    {
        var config = (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "tokenizer_config.json")))!;
        var list = new JsonArray();
        foreach (var (id, t) in (JsonObject)config["added_tokens_decoder"]!)
        {
            list.Add(new JsonObject
            {
                ["id"] = int.Parse(id), ["content"] = t!["content"]!.DeepClone(), ["special"] = t["special"]!.DeepClone(),
                ["lstrip"] = t["lstrip"]!.DeepClone(), ["rstrip"] = t["rstrip"]!.DeepClone(), ["normalized"] = t["normalized"]!.DeepClone(),
                ["single_word"] = t["single_word"]!.DeepClone(),
            });
        }
        return list;
    }

    private static string FastOnly(string name, JsonObject tokenizerJson, bool keepConfig)
    {
        string src = Path.Combine(Fixtures.Dir("tokenizers"), name);
        string dir = Fixtures.TempDir();
        if (keepConfig)
        {
            foreach (var f in new[] { "tokenizer_config.json", "special_tokens_map.json" })
                File.Copy(Path.Combine(src, f), Path.Combine(dir, f));
        }
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), tokenizerJson.ToJsonString());
        return dir;
    }

    private static JsonObject Build(string name)
    {
        string src = Path.Combine(Fixtures.Dir("tokenizers"), name);
        var added = AddedTokens(src);
        if (File.Exists(Path.Combine(src, "vocab.json")))
        {
            var merges = new JsonArray(File.ReadLines(Path.Combine(src, "merges.txt")).Where(l => l.Length > 0 && !l.StartsWith("#version")).Select(l => (JsonNode)JsonValue.Create(l)!).ToArray());
            return new JsonObject
            {
                ["added_tokens"] = added,
                ["post_processor"] = new JsonObject { ["type"] = "TemplateProcessing", ["single"] = new JsonArray(new JsonObject { ["SpecialToken"] = new JsonObject { ["id"] = "</s>", ["type_id"] = 0 } }, new JsonObject { ["Sequence"] = new JsonObject { ["id"] = "A", ["type_id"] = 0 } }) },
                ["model"] = new JsonObject { ["type"] = "BPE", ["vocab"] = JsonNode.Parse(File.ReadAllText(Path.Combine(src, "vocab.json"))), ["merges"] = merges },
            };
        }
        if (File.Exists(Path.Combine(src, "spiece.model")))
        {
            var sp = SentencePieceModel.Load(File.ReadAllBytes(Path.Combine(src, "spiece.model")), name);
            var charsmap = ExtractCharsmap(File.ReadAllBytes(Path.Combine(src, "spiece.model")));
            return new JsonObject
            {
                ["added_tokens"] = added,
                ["normalizer"] = new JsonObject { ["type"] = "Sequence", ["normalizers"] = new JsonArray(new JsonObject { ["type"] = "Precompiled", ["precompiled_charsmap"] = Convert.ToBase64String(charsmap) }) },
                ["model"] = new JsonObject { ["type"] = "Unigram", ["unk_id"] = sp.UnkId, ["vocab"] = new JsonArray(sp.Pieces.Select(p => (JsonNode)new JsonArray(p.Piece, p.Score)).ToArray()) },
            };
        }
        var words = File.ReadAllLines(Path.Combine(src, "vocab.txt"));
        var vocab = new JsonObject();
        for (int i = 0; i < words.Length; i++) vocab[words[i]] = i;
        return new JsonObject
        {
            ["added_tokens"] = added,
            ["normalizer"] = new JsonObject { ["type"] = "BertNormalizer", ["lowercase"] = true, ["strip_accents"] = null, ["handle_chinese_chars"] = true, ["clean_text"] = true },
            ["model"] = new JsonObject { ["type"] = "WordPiece", ["vocab"] = vocab },
        };
    }

    /// <summary>normalizer_spec.precompiled_charsmap (field 3 → field 2) of a SentencePiece model.</summary>
    private static byte[] ExtractCharsmap(byte[] model)
    {
        static (int Field, int Wire, byte[] Bytes, int Next) ReadField(byte[] b, int i)
        {
            ulong Varint(ref int j) { ulong r = 0; int s = 0; while (true) { byte c = b[j++]; r |= (ulong)(c & 0x7F) << s; if (c < 0x80) return r; s += 7; } }
            ulong key = Varint(ref i);
            int wire = (int)(key & 7);
            switch (wire)
            {
                case 0: Varint(ref i); return ((int)(key >> 3), 0, [], i);
                case 5: return ((int)(key >> 3), 5, [], i + 4);
                case 1: return ((int)(key >> 3), 1, [], i + 8);
                default: int len = (int)Varint(ref i); return ((int)(key >> 3), 2, b[i..(i + len)], i + len);
            }
        }
        for (int i = 0; i < model.Length;)
        {
            var (f, w, bytes, next) = ReadField(model, i);
            if (f == 3 && w == 2)
            {
                for (int j = 0; j < bytes.Length;)
                {
                    var (g, w2, inner, n2) = ReadField(bytes, j);
                    if (g == 2 && w2 == 2) return inner;
                    j = n2;
                }
            }
            i = next;
        }
        return [];
    }

    [Theory]
    [InlineData("opt_blip2", true)]
    [InlineData("opt_blip2", false)]
    [InlineData("t5_blip2", true)]
    [InlineData("qformer_blip2", true)]
    public void TokenizerJsonAloneGivesTheGoldens(string name, bool withConfig)
    {
        var t = Tokenizer.FromPretrained(FastOnly(name, Build(name), withConfig));
        var strings = Fixtures.Manifest("tokenizers")["tokenizers"]![name]!["strings"]!.AsArray();
        foreach (var g in strings)
        {
            var enc = t.Encode((string)g!["text"]!);
            Assert.Equal(g["ids"]!.AsArray().Select(x => (int)x!), enc.Ids);
            Assert.Equal((string)g["decode_skip_special"]!, t.Decode(enc.Ids, skipSpecialTokens: true));
        }
    }
}
