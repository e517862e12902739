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
        var (first, last) = TextPretraining.Train(lm, tokenizer, corpus, options);
        Assert.True(last < first * 0.7, $"loss {first:F3} → {last:F3}");

        TextPretraining.Save(lm, dir);
        using var back = TextPretraining.Load(dir);
        var ids = tensor(tokenizer.Encode("a large red circle").Ids.Select(i => (long)i).ToArray()).unsqueeze(0);
        using var noGrad = no_grad();
        using var a = lm.Forward(lm.EmbedTokens(ids), ones_like(ids));
        using var b = back.Forward(back.EmbedTokens(ids), ones_like(ids));
        Assert.Equal(0f, (a.Logits - b.Logits).abs().max().item<float>());
    }
}
