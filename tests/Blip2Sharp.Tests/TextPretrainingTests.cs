using Blip2Sharp.Demo;
using Blip2Sharp.Modeling;
using Blip2Sharp.Modeling.Opt;
using Blip2Sharp.Processing.Tokenizers;
using Xunit;
using static TorchSharp.torch;

namespace Blip2Sharp.Tests;

public class TextPretrainingTests
{
    [Fact]
    public void TheTextOnlyLanguageModelLearnsAndReloads()
    {
        string dir = Fixtures.TempDir();
        SceneVocabulary.WriteBpe(dir, SceneVocabulary.Words(scenes: 300));
        var tokenizer = Tokenizer.FromPretrained(dir);
        var options = new TextPretraining.Options { HiddenSize = 32, Layers = 2, Heads = 2, FfnDim = 64, Steps = 60, BatchSize = 8, Lr = 3e-3 };
        using var lm = new OptForCausalLM(TextPretraining.Config(options, tokenizer.Count), ModelOptions.Cpu);
        var corpus = TextPretraining.Corpus(100, seed: 2);
        Assert.Contains(corpus, t => t.Contains(" Question: ") && t.Contains(" Answer: "));
        var (first, last) = TextPretraining.Train(lm, tokenizer, corpus, [], options);
        Assert.True(last < first * 0.7, $"loss {first:F3} → {last:F3}");

        TextPretraining.Save(lm, dir);
        using var back = TextPretraining.Load(dir);
        var ids = tensor(tokenizer.Encode("a large red circle").Ids.Select(i => (long)i).ToArray()).unsqueeze(0);
        using var noGrad = no_grad();
        using var a = lm.Forward(lm.EmbedTokens(ids), ones_like(ids));
        using var b = back.Forward(back.EmbedTokens(ids), ones_like(ids));
        Assert.Equal(0f, (a.Logits - b.Logits).abs().max().item<float>());
    }

    [Fact]
    public void TheAnswerWeightFindsTheTokenAfterTheMarker()
    {
        // Rows padded to width 7; labels are the ids shifted by one, so label position p sits at flat index row * 6 + p - 1.
        List<List<int>> batch = [[5, 9, 7, 3, 9, 7, 4], [9, 7, 8, 1]];
        var flags = TextPretraining.AnswerPositions(batch, 7, [9, 7]).data<float>().ToArray();
        Assert.Equal(12, flags.Length);
        Assert.Equal([2, 5, 7], Enumerable.Range(0, 12).Where(i => flags[i] == 1).ToArray());
        // The real marker: " Answer:" in the scene tokenizer, followed by the answer word.
        string dir = Fixtures.TempDir();
        SceneVocabulary.WriteBpe(dir, SceneVocabulary.Words(scenes: 300));
        var tokenizer = Tokenizer.FromPretrained(dir);
        var ids = TextPretraining.EncodeDocuments(tokenizer, "a red circle</s>Question: what color is the circle? Answer: red\n");
        var marker = tokenizer.Encode(" Answer:", addSpecialTokens: false).Ids;
        var at = TextPretraining.AnswerPositions([ids], ids.Count, marker).data<float>().ToArray();
        int label = Array.IndexOf(at, 1f) + 1;
        Assert.Equal(1, at.Count(f => f == 1));
        Assert.Equal(" red", tokenizer.Decode([ids[label]]));
    }

    [Fact]
    public void TheRestateWeightFindsTheRestatedDescription()
    {
        // Width 6, so label position p of row b sits at flat index b * 5 + p - 1; row 0 restates from position 3 on.
        List<List<int>> batch = [[2, 5, 2, 5, 6, 7], [2, 5, 2, 5]];
        var flags = TextPretraining.RestatedPositions(batch, [3, -1], 6).data<float>().ToArray();
        Assert.Equal(10, flags.Length);
        Assert.Equal([2, 3, 4], Enumerable.Range(0, 10).Where(i => flags[i] == 1).ToArray());
    }

    [Fact]
    public void PackedDocumentsAreSeparatedByTheBosToken()
    {
        string dir = Fixtures.TempDir();
        SceneVocabulary.WriteBpe(dir, SceneVocabulary.Words(scenes: 50));
        var tokenizer = Tokenizer.FromPretrained(dir);
        var ids = TextPretraining.EncodeDocuments(tokenizer, "a large red circle on the left</s>Question: what color is the circle? Answer: red\n");
        int sep = tokenizer.TokenToId("</s>");
        Assert.Equal(2, sep);                                       // OPT's bos, eos and document separator
        Assert.Equal(sep, ids[0]);                                  // bos first, as OPT's tokenizer adds it
        int at = ids.IndexOf(sep, 1);
        Assert.Equal("a large red circle on the left", tokenizer.Decode(ids.Skip(1).Take(at - 1).ToList()));
        Assert.Equal("Question: what color is the circle? Answer: red\n", tokenizer.Decode(ids.Skip(at + 1).ToList()));
        Assert.Equal(2, ids.Count(i => i == sep));                 // bos and the one separator
    }

    [Fact]
    public void ADescriptionStandsWhereTheSoftPromptWould()
    {
        Assert.Equal([2, 1, 1, 7, 8, 9], Training.SoftPromptLayout.Place([7, 8, 9], 6, bos: 2, pad: 1));
        Assert.Equal([2, 7, 8, 9], Training.SoftPromptLayout.Place([7, 8, 9, 10, 11], 4, bos: 2, pad: 1));   // first length − 1 kept
        Assert.True(Training.SoftPromptLayout.Fits(5, 6));
        Assert.False(Training.SoftPromptLayout.Fits(6, 6));

        string dir = Fixtures.TempDir();
        SceneVocabulary.WriteBpe(dir, SceneVocabulary.Words(scenes: 50));
        var tokenizer = Tokenizer.FromPretrained(dir);
        const string text = "a large red circle on the left</s>Question: what color is the circle? Answer: red\n";
        var ids = TextPretraining.EncodeDocuments(tokenizer, text, promptLength: 32);
        Assert.Equal(2, ids[0]);
        Assert.Equal(32, ids.IndexOf(2, 1));                                         // the separator after 32 positions, as after 32 queries
        Assert.Equal(32 - 1 - 7, ids.Count(i => i == 1));                            // bos + fillers + 7 words
        Assert.All(ids.Skip(1).Take(24), i => Assert.Equal(1, i));
        Assert.Equal("a large red circle on the left", tokenizer.Decode(ids.Skip(25).Take(7).ToList()));
        Assert.Equal(TextPretraining.EncodeDocuments(tokenizer, text).Skip(8), ids.Skip(32));   // the rest as without fillers
        // One document, or a first document too long for the prompt: as without fillers.
        Assert.Equal(TextPretraining.EncodeDocuments(tokenizer, "a red circle\n"), TextPretraining.EncodeDocuments(tokenizer, "a red circle\n", 32));
        Assert.Equal(TextPretraining.EncodeDocuments(tokenizer, text), TextPretraining.EncodeDocuments(tokenizer, text, 7));

        // No loss on fillers nor on the batch's padding: labels are the next ids with −100 there.
        var (padded, mask) = tokenizer.PadRight([[2, 1, 1, 7, 8, 2, 9], [2, 7, 2, 9]]);
        var labels = TextPretraining.Labels(padded, mask, pad: 1).data<long>().ToArray();
        Assert.Equal([-100, -100, 7, 8, 2, 9, 7, 2, 9, -100, -100, -100], labels);
    }

    [Fact]
    public void TheCorpusAsksAboutEachSceneAfterASeparator()
    {
        var corpus = TextPretraining.Corpus(20, seed: 4);
        Assert.Contains(corpus, t => t.Contains("</s>Question: what shape is the ") && t.EndsWith("\n"));
        Assert.Contains(corpus, t => t.Contains(". Question: "));
        Assert.All(corpus, t => Assert.EndsWith("\n", t));
    }

    [Fact]
    public void RepetitionDocumentsRepeatARandomSequenceOfVariableLength()
    {
        string[] words = ["red", "circle", "left", "Answer"];
        var texts = TextPretraining.Repetitions(words, 200, seed: 3);
        Assert.Equal(texts, TextPretraining.Repetitions(words, 200, seed: 3));
        var lengths = new HashSet<int>();
        foreach (var t in texts)
        {
            Assert.EndsWith("\n", t);
            var halves = t[..^1].Split(TextPretraining.Separator);
            Assert.Equal(2, halves.Length);
            Assert.Equal(halves[0], halves[1]);
            var seq = halves[0].Split(' ');
            Assert.InRange(seq.Length, 3, 24);
            Assert.All(seq, w => Assert.Contains(w, words));
            lengths.Add(seq.Length);
        }
        // Many lengths, so the copy cannot be learned as a fixed offset.
        Assert.True(lengths.Count >= 20, $"{lengths.Count} lengths");
    }
}
