using Blip2Sharp.Demo;
using Blip2Sharp.Processing.Tokenizers;
using Xunit;

namespace Blip2Sharp.Tests;

public class SceneVocabularyTests
{
    [Fact]
    public void EverySceneWordIsOneTokenAndTextRoundTrips()
    {
        var words = SceneVocabulary.Words(scenes: 300);
        Assert.Contains("circle", words);
        Assert.Contains("purple", words);
        string dir = Fixtures.TempDir();
        SceneVocabulary.WriteBpe(Path.Combine(dir, "opt"), words);
        SceneVocabulary.WriteWordPiece(Path.Combine(dir, "qformer"), words);
        var opt = Tokenizer.FromPretrained(Path.Combine(dir, "opt"));
        var bert = Tokenizer.FromPretrained(Path.Combine(dir, "qformer"));
        string text = "a large red circle on the left and a small blue square in the middle, on a white background. Question: what color is the circle? Answer: red";
        var enc = opt.Encode(text);
        Assert.Equal(2, enc.Ids[0]); // </s> first, as OPT
        Assert.Contains("Ġcircle", enc.Tokens);
        Assert.Contains("Ġpurple", opt.Tokenize(" purple"));
        Assert.Equal(text, opt.Decode(enc.Ids, skipSpecialTokens: true));
        var b = bert.Encode(text);
        Assert.DoesNotContain(b.Tokens, t => t.StartsWith("##")); // whole words
        Assert.Equal(bert.Count - 1, bert.BosTokenId);           // [DEC] added after the vocabulary
        Assert.Equal("a large red circle on the left and a small blue square in the middle, on a white background. question : what color is the circle? answer : red", bert.Decode(b.Ids, skipSpecialTokens: true));
        var rng = new Random(5);
        for (int i = 0; i < 50; i++)
            foreach (var c in Scene.Random(rng).Captions())
                Assert.All(opt.Tokenize(c), t => Assert.True(words.Contains(t.TrimStart('Ġ')) || t is "," or ":", $"'{t}' in '{c}' is not a whole word")); // one token per word
    }
}
