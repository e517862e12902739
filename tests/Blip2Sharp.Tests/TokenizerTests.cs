using System.Text.Json.Nodes;
using Blip2Sharp.Processing.Tokenizers;
using Xunit;

namespace Blip2Sharp.Tests;

public class TokenizerTests
{
    private static readonly JsonObject Golden = (JsonObject)Fixtures.Manifest("tokenizers")["tokenizers"]!;

    public static TheoryData<string, int> Strings()
    {
        var data = new TheoryData<string, int>();
        foreach (var (name, node) in Golden)
        {
            for (int i = 0; i < node!["strings"]!.AsArray().Count; i++) data.Add(name, i);
        }
        return data;
    }

    private static readonly Dictionary<string, Tokenizer> Cache = [];

    internal static Tokenizer Load(string name)
    {
        lock (Cache)
        {
            if (!Cache.TryGetValue(name, out var t)) Cache[name] = t = Tokenizer.FromPretrained(Path.Combine(Fixtures.Dir("tokenizers"), name));
            return t;
        }
    }

    private static List<int> Ints(JsonNode n) => n.AsArray().Select(x => (int)x!).ToList();

    [Theory]
    [MemberData(nameof(Strings))]
    public void EncodesAndDecodesLikeTheReference(string name, int index)
    {
        var g = Golden[name]!["strings"]![index]!;
        var t = Load(name);
        string text = (string)g["text"]!;
        var enc = t.Encode(text);
        Assert.Equal(g["tokens"]!.AsArray().Select(x => (string)x!), enc.Tokens);
        Assert.Equal(Ints(g["ids"]!), enc.Ids);
        Assert.Equal(Ints(g["ids_no_special"]!), t.Encode(text, addSpecialTokens: false).Ids);
        Assert.Equal((string)g["decode"]!, t.Decode(enc.Ids));
        Assert.Equal((string)g["decode_skip_special"]!, t.Decode(enc.Ids, skipSpecialTokens: true));
        Assert.Equal((string)g["decode_no_special_ids"]!, t.Decode(Ints(g["ids_no_special"]!)));
    }

    [Theory]
    [InlineData("opt")]
    [InlineData("t5")]
    [InlineData("bert")]
    [InlineData("qformer")]
    [InlineData("opt_blip2")]
    [InlineData("t5_blip2")]
    [InlineData("qformer_blip2")]
    public void PadsBatchesOnEitherSide(string name)
    {
        var g = Golden[name]!["batch_padding"]!;
        var texts = g["texts"]!.AsArray().Select(x => (string)x!).ToList();
        var t = Load(name);
        foreach (var side in new[] { "left", "right" })
        {
            var (ids, mask) = t.EncodeBatch(texts, padLeft: side == "left");
            Assert.Equal(g[side]!["input_ids"]!.AsArray().Select(r => r!.AsArray().Select(x => (long)x!).ToArray()), ids);
            Assert.Equal(g[side]!["attention_mask"]!.AsArray().Select(r => r!.AsArray().Select(x => (long)x!).ToArray()), mask);
        }
    }

    [Theory]
    [InlineData("opt", 480)]
    [InlineData("opt_blip2", 481)]
    [InlineData("t5", 340)]
    [InlineData("t5_blip2", 341)]
    [InlineData("qformer_blip2", 263)]
    public void LengthCountsAddedTokens(string name, int expected) => Assert.Equal(expected, Load(name).Count);
}
