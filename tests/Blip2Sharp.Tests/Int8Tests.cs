using Blip2Sharp.Generation;
using Blip2Sharp.Modeling;
using Blip2Sharp.Modeling.Layers;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Blip2Sharp.Tests;

[Collection(ProcessWideSwitchesCollection.Name)]
public class Int8Tests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(1, 100, true)]
    [InlineData(3, 100, true)]
    [InlineData(9, 100, true)]
    [InlineData(17, 100, true)]
    [InlineData(1, 100, false)]
    [InlineData(3, 100, false)]
    [InlineData(2, 2560, true)]
    [InlineData(2, 2560, false)]
    public void TheInt8KernelMatchesTheDequantizedProduct(int rows, int columns, bool vnni)
    {
        var gen = new Generator(11);
        var w = randn([70, columns], generator: gen);      // 100 columns: not a whole number of 32-blocks
        var b = randn([70], generator: gen);
        var x = randn([rows, columns], generator: gen);
        using var q = new Int8Weight(w, vnni);
        using var deq = q.Dequantize();
        // Weight error: at most half a quantization step of its row.
        var step = w.abs().amax([1], keepdim: true) / 127;
        Assert.True((deq - w).abs().le(step / 2 + 1e-6).all().item<bool>());
        // The kernel also quantizes the activations (per block of 32): a small relative error against the float product.
        var exact = nn.functional.linear(x, deq, b);
        var got = q.Linear(x, b);
        double rel = ((got - exact).norm() / exact.norm()).item<float>();
        Assert.True(rel < 0.02, $"relative error {rel}");
        if (rows > FloatGemv.MaxRows) Assert.True((got - exact).abs().max().item<float>() < 1e-4); // large inputs take the dequantized GEMM
        // The VNNI kernel (offset weights) and the AVX2 kernel compute the same sums of the same bytes.
        using var other = new Int8Weight(w, !vnni);
        Assert.True((other.Linear(x, b) - got).abs().max().item<float>() < 1e-4 * got.abs().max().item<float>());
    }

    [Fact]
    public void AVectorOfRoundedHalvesQuantizesAsTheScalarPathDoes()
    {
        // 63 columns: one whole block of 32 (the AVX2 quantizer), then its first 31 values as the partial last block
        // (the scalar quantizer). 63.5 is the largest magnitude of both, so both scales are 0.5, and the other values,
        // (i - 16) / 4, divide to halves and whole numbers: rounding half to even decides.
        float[] block = [63.5f, .. Enumerable.Range(1, 31).Select(i => (i - 16) * 0.25f)];
        var x = tensor(block.Concat(block[..31]).ToArray()).unsqueeze(0);
        using var q = new Int8Weight(eye(63));                                   // rows of one 1: exact in int8
        var y = q.Linear(x, null)[0].data<float>().ToArray();
        for (int i = 0; i < 31; i++) Assert.Equal(y[i], y[32 + i], 5);
        for (int i = 1; i < 31; i++) Assert.Equal(Math.Round((i - 16) / 2.0, MidpointRounding.ToEven) * 0.5, y[i], 5);
        Assert.Equal(63.5, y[0], 4);
    }

    [Fact]
    public void LibtorchThreadsSpinBrieflyUnlessTheUserChose()
    {
        // The managed environment is the process's start-up copy: what the user set, before the module initializer.
        string? chosen = Environment.GetEnvironmentVariable(OpenMpSpinCount.Variable);
        bool policy = Environment.GetEnvironmentVariable("OMP_WAIT_POLICY") is not null;
        Assert.Equal(chosen ?? (policy ? null : "1000"), OpenMpSpinCount.Current);
    }

    [Theory]
    [InlineData(1, 100, 70)]
    [InlineData(4, 2560, 33)]
    [InlineData(7, 2560, 61)]
    [InlineData(16, 1030, 45)]
    public void TheFloatDecodeKernelMatchesLibtorch(int rows, int inF, int outF)
    {
        var gen = new Generator(5);
        var w = randn([outF, inF], generator: gen);
        var b = randn([outF], generator: gen);
        var x = randn([rows, inF], generator: gen);
        using var noGrad = no_grad();
        Assert.True(FloatGemv.Applies(x, w));
        var got = FloatGemv.Linear(x, w, b);
        var want = nn.functional.linear(x, w, b);
        Assert.True((got - want).abs().max().item<float>() <= 1e-4 * want.abs().max().item<float>());
        // A row taken out of a larger tensor (a view with an offset) is read from the right place.
        var big = randn([3, rows, inF], generator: gen);
        Assert.True((FloatGemv.Linear(big[2], w, null) - nn.functional.linear(big[2], w)).abs().max().item<float>() < 1e-3);
    }

    [Fact]
    public void AFloatDecodeRowIsTheSameBitsAloneAndInAnyBatch()
    {
        // 1030 inputs (a tail past the last 8-float chunk), 45 outputs (blocks of 8 and 4 with remainders).
        var gen = new Generator(8);
        var w = randn([45, 1030], generator: gen);
        var b = randn([45], generator: gen);
        var x = randn([16, 1030], generator: gen);
        using var noGrad = no_grad();
        var alone = Enumerable.Range(0, 16).Select(r => FloatGemv.Linear(x[r].unsqueeze(0), w, b)).ToList();
        foreach (int rows in new[] { 2, 3, 4, 5, 8, 9, 16 })
        {
            var batch = FloatGemv.Linear(x[..rows], w, b);
            for (int r = 0; r < rows; r++) Assert.True(batch[r].unsqueeze(0).equal(alone[r]).all().item<bool>(), $"row {r} of {rows}");
        }
        // The AVX2 form of the 16 lanes (two 256-bit halves) computes the same bits as the AVX-512 one.
        bool wide = FloatGemv.Wide512;
        try
        {
            FloatGemv.Wide512 = false;
            foreach (int rows in new[] { 1, 4, 9 })
            {
                var batch = FloatGemv.Linear(x[..rows], w, b);
                for (int r = 0; r < rows; r++) Assert.True(batch[r].unsqueeze(0).equal(alone[r]).all().item<bool>(), $"AVX2: row {r} of {rows}");
            }
        }
        finally
        {
            FloatGemv.Wide512 = wide;
        }
    }

    [Fact]
    public void QuantizedTinyOptStaysCloseToTheReference()
    {
        // The README's figures: on tiny-opt the largest int8 logit error is under 0.05 (the golden's largest logit is
        // ~4.9) and every greedy token of gen_greedy_prompt (2 rows × 12) equals the float32 golden's.
        var g = new GoldenAssert("tiny-opt");
        var x = g.Goldens;
        using var model = Blip2ForConditionalGeneration.FromPretrained(Fixtures.Dir("tiny-opt"));
        model.Opt!.QuantizeInt8();
        using var noGrad = no_grad();
        using var o = model.Forward(x["pixel_values"], x["input_ids"], x["attention_mask"]);
        double maxErr = (o.Logits - x["logits"]).abs().max().item<float>();
        output.WriteLine($"int8 tiny-opt: max |logit error| {maxErr:E3} (max |logit| {x["logits"].abs().max().item<float>():F3})");
        Assert.True(maxErr < 0.05, $"max logit error {maxErr}");
        // Greedy decoding with int8 (the one-row kernel) against the float32 goldens.
        var gen = new Blip2Generator(model);
        var ids = gen.Generate(x["pixel_values"], x["gen_input_ids"], x["gen_attention_mask"], new GenerationOptions { MaxNewTokens = 12 });
        var compared = 0;
        for (int r = 0; r < 2; r++)
        {
            var golden = x["gen_greedy_prompt"][r].data<long>().ToArray().Skip(1).Select(t => (int)t).ToList();
            var stop = golden.IndexOf(model.Config.TextConfig.EosTokenId![0]);
            var expected = stop >= 0 ? golden.Take(stop + 1).ToList() : golden;
            Assert.Equal(expected, ids[r][0].Tokens);
            compared += expected.Count;
        }
        Assert.Equal(24, compared);
        // Switched back, the float32 weights give the reference logits within the fixture's tolerance.
        model.Opt.UseInt8 = false;
        using var f = model.Forward(x["pixel_values"], x["input_ids"], x["attention_mask"]);
        g.Close("logits", f.Logits);
    }
}
