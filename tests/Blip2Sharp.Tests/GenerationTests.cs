using Blip2Sharp.Generation;
using Blip2Sharp.Modeling;
using Xunit;
using static TorchSharp.torch;

namespace Blip2Sharp.Tests;

public class GenerationTests
{
    /// <summary>The reference's generate() output: [BOS] (OPT) or [decoder start] (T5) + new tokens, right-padded.</summary>
    internal static long[][] AsReference(Blip2Generator g, List<List<GeneratedSequence>> result)
    {
        int lead = g.Model.Opt is not null ? g.Model.Config.TextConfig.BosTokenId ?? 2 : g.Model.Config.TextConfig.DecoderStartTokenId ?? 0;
        var rows = result.SelectMany(r => r).Select(s => s.Tokens.Select(t => (long)t).Prepend(lead).ToArray()).ToList();
        int width = rows.Max(r => r.Length);
        return [.. rows.Select(r => r.Concat(Enumerable.Repeat((long)g.PadTokenId, width - r.Length)).ToArray())];
    }

    private static long[][] Rows(Tensor t) => [.. Enumerable.Range(0, (int)t.shape[0]).Select(i => t[i].data<long>().ToArray())];

    public static TheoryData<string, string> Calls()
    {
        var d = new TheoryData<string, string>();
        foreach (var f in new[] { "tiny-opt", "tiny-t5" })
            foreach (var c in new[] { "gen_greedy_noprompt", "gen_greedy_noprompt_legacy", "gen_greedy_prompt", "gen_beam", "gen_eos_override", "gen_min_new_tokens" })
                d.Add(f, c);
        return d;
    }

    private static readonly Dictionary<string, Blip2ForConditionalGeneration> Models = [];

    internal static Blip2ForConditionalGeneration Model(string fixture)
    {
        lock (Models)
        {
            if (!Models.TryGetValue(fixture, out var m)) Models[fixture] = m = Blip2ForConditionalGeneration.FromPretrained(Fixtures.Dir(fixture));
            return m;
        }
    }

    /// <summary>Runs a golden generate call as the manifest records it (kwargs and inputs).</summary>
    internal static List<List<GeneratedSequence>> RunCall(string fixture, string call, out Blip2Generator gen)
    {
        var x = Fixtures.Goldens(fixture);
        var manifest = Fixtures.Manifest(fixture);
        gen = new Blip2Generator(Model(fixture));
        var o = OptionsOf(manifest, call);
        var pixels = x["pixel_values"];
        return call switch
        {
            "gen_greedy_noprompt" => gen.Generate(pixels, x["gen_input_ids_noprompt"], x["gen_attention_mask_noprompt"], o),
            // Legacy: no <image> tokens; the prompt is the BOS alone (OPT </s>, T5 </s> as text_config.bos_token_id).
            "gen_greedy_noprompt_legacy" => gen.Generate(pixels, full(pixels.shape[0], 1, (long)(gen.Model.Config.TextConfig.BosTokenId ?? 2)), null, o, useImageTokens: false),
            _ => gen.Generate(pixels, x["gen_input_ids"], x["gen_attention_mask"], o),
        };
    }

    /// <summary>The generate() arguments a golden call recorded (max_new_tokens 12 where it gave none).</summary>
    internal static GenerationOptions OptionsOf(System.Text.Json.Nodes.JsonObject manifest, string call)
    {
        var kw = manifest["calls"]!.AsArray().First(c => (string)c!["name"]! == call)!["kwargs"];
        return new GenerationOptions
        {
            MaxNewTokens = kw?["max_new_tokens"] is { } m ? (int)m : 12,
            MinNewTokens = kw?["min_new_tokens"] is { } mn ? (int)mn : 0,
            NumBeams = kw?["num_beams"] is { } nb ? (int)nb : 1,
            LengthPenalty = kw?["length_penalty"] is { } lp ? (double)lp : 1.0,
            NoRepeatNgramSize = kw?["no_repeat_ngram_size"] is { } ng ? (int)ng : 0,
            EosTokenId = kw?["eos_token_id"] is { } e ? [(int)e] : null,
        };
    }

    [Theory]
    [MemberData(nameof(Calls))]
    public void GeneratedIdsEqualTheReference(string fixture, string call)
    {
        var result = RunCall(fixture, call, out var gen);
        Assert.Equal(Rows(Fixtures.Goldens(fixture)[call]), AsReference(gen, result));
    }

    [Theory]
    [InlineData("tiny-opt")]
    [InlineData("tiny-t5")]
    public void ABatchEqualsOneByOne(string fixture)
    {
        var x = Fixtures.Goldens(fixture);
        var gen = new Blip2Generator(Model(fixture));
        var o = new GenerationOptions { MaxNewTokens = 12 };
        var batched = gen.Generate(x["pixel_values"], x["gen_input_ids"], x["gen_attention_mask"], o);
        for (int i = 0; i < 2; i++)
        {
            // One at a time, without the left padding the batch needed.
            var mask = x["gen_attention_mask"][i];
            var keep = mask.nonzero().squeeze(1);
            var single = gen.Generate(x["pixel_values"][i..(i + 1)], x["gen_input_ids"][i].index_select(0, keep).unsqueeze(0), null, o);
            Assert.Equal(batched[i][0].Tokens, single[0][0].Tokens);
        }
    }

    [Theory]
    [InlineData("tiny-opt")]
    [InlineData("tiny-t5")]
    public void CachedDecodingEqualsFullRecomputation(string fixture)
    {
        var x = Fixtures.Goldens(fixture);
        var model = Model(fixture);
        var gen = new Blip2Generator(model);
        var result = gen.Generate(x["pixel_values"], x["gen_input_ids"], x["gen_attention_mask"], new GenerationOptions { MaxNewTokens = 6, EosTokenId = [] });
        using var noGrad = no_grad();
        using var prefix = model.ImagePrefix(x["pixel_values"]);
        var (embeds, mask) = model.MergeImagePrefix(prefix, x["gen_input_ids"], x["gen_attention_mask"]);
        // Logits of every step, recomputed from scratch over prompt + tokens so far, against the cached path's logits.
        using IDecoderState state = model.Opt is { } opt ? new OptDecoderState(opt, embeds, mask, 6) : new T5DecoderState(model.T5!, embeds, mask, 6);
        var cached = state.Next(null);
        for (int step = 0; step < 5; step++)
        {
            var tokens = Enumerable.Range(0, 2).Select(r => (long)result[r][0].Tokens[step]).ToArray();
            Tensor full;
            var prefixTokens = tensor(Enumerable.Range(0, 2).SelectMany(r => result[r][0].Tokens.Take(step + 1).Select(t => (long)t)).ToArray()).reshape(2, step + 1);
            if (model.Opt is { } o)
            {
                var e = cat([embeds, o.EmbedTokens(prefixTokens)], 1);
                var m = cat([mask, ones(2, step + 1, dtype: ScalarType.Int64)], 1);
                full = o.Forward(e, m).Logits[.., -1, ..];
            }
            else
            {
                var t5 = model.T5!;
                var dec = cat([zeros(2, 1, dtype: ScalarType.Int64), prefixTokens], 1);
                full = t5.Forward(embeds, mask, dec).Logits[.., -1, ..];
            }
            var next = state.Next(tensor(tokens));
            double diff = (next - full).abs().max().item<float>();
            Assert.True(diff <= 1e-5, $"step {step}: cached vs full logits differ by {diff}");
            cached = next;
        }
        Assert.NotNull(cached);
    }

    [Theory]
    [InlineData("tiny-opt")]
    [InlineData("tiny-t5")]
    public void BeamSearchReturnsSeveralSequencesBestFirst(string fixture)
    {
        var x = Fixtures.Goldens(fixture);
        var gen = new Blip2Generator(Model(fixture));
        var o = new GenerationOptions { NumBeams = 4, NumReturnSequences = 3, MaxNewTokens = 8 };
        var result = gen.Generate(x["pixel_values"], x["gen_input_ids"], x["gen_attention_mask"], o);
        Assert.All(result, r =>
        {
            Assert.Equal(3, r.Count);
            Assert.Equal(3, r.Select(s => string.Join(",", s.Tokens)).Distinct().Count());
            Assert.True(r[0].Score >= r[1].Score && r[1].Score >= r[2].Score);
        });
        // The best of several equals the single best (num_return_sequences = 1).
        var single = gen.Generate(x["pixel_values"], x["gen_input_ids"], x["gen_attention_mask"], o with { NumReturnSequences = 1 });
        Assert.Equal(single[0][0].Tokens, result[0][0].Tokens);
    }

    [Fact]
    public void AFixedSeedReproducesASample()
    {
        var x = Fixtures.Goldens("tiny-opt");
        var gen = new Blip2Generator(Model("tiny-opt"));
        var o = new GenerationOptions { DoSample = true, Seed = 1234, TopK = 50, TopP = 0.9, Temperature = 1.3, MaxNewTokens = 12, EosTokenId = [], NumReturnSequences = 2 };
        var a = gen.Generate(x["pixel_values"], x["gen_input_ids"], x["gen_attention_mask"], o);
        var b = gen.Generate(x["pixel_values"], x["gen_input_ids"], x["gen_attention_mask"], o);
        var c = gen.Generate(x["pixel_values"], x["gen_input_ids"], x["gen_attention_mask"], o with { Seed = 99 });
        string Flat(List<List<GeneratedSequence>> r) => string.Join("|", r.SelectMany(s => s).Select(s => string.Join(",", s.Tokens)));
        Assert.Equal(Flat(a), Flat(b));
        Assert.NotEqual(Flat(a), Flat(c));
        Assert.All(a.SelectMany(s => s), s => Assert.Equal(12, s.Tokens.Count));
    }

    [Theory]
    [InlineData(0, 1, 1.0, 1.0, "num_beams")]
    [InlineData(1, 1, 2.0, 1.0, "top_p")]
    [InlineData(1, 1, 1.0, -0.5, "temperature")]
    [InlineData(2, 3, 1.0, 1.0, "num_return_sequences")]
    public void InvalidOptionsAreRefused(int beams, int ret, double topP, double temperature, string word)
    {
        var o = new GenerationOptions { NumBeams = beams, NumReturnSequences = ret, TopP = topP, Temperature = temperature };
        var e = Assert.Throws<ArgumentException>(o.Validate);
        Assert.Contains(word, e.Message);
    }
}
