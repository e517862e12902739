using Blip2Sharp.Generation;
using Blip2Sharp.Modeling;
using Blip2Sharp.Modeling.Layers;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Blip2Sharp.Tests;

public class Int8Tests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(9)]
    public void TheInt8KernelMatchesTheDequantizedProduct(int rows)
    {
        var gen = new Generator(11);
        var w = randn([70, 100], generator: gen);          // 100 columns: not a whole number of 32-blocks
        var b = randn([70], generator: gen);
        var x = randn([rows, 100], generator: gen);
        using var q = new Int8Weight(w);
        using var deq = q.Dequantize();
        // Weight error: at most half a quantization step of its row.
        var step = w.abs().amax([1], keepdim: true) / 127;
        Assert.True((deq - w).abs().le(step / 2 + 1e-6).all().item<bool>());
        // The kernel also quantizes the activations (per block of 32): a small relative error against the float product.
        var exact = nn.functional.linear(x, deq, b);
        var got = q.Linear(x, b);
        double rel = ((got - exact).norm() / exact.norm()).item<float>();
        Assert.True(rel < 0.02, $"relative error {rel}");
        if (rows > 4) Assert.True((got - exact).abs().max().item<float>() < 1e-4); // large inputs take the dequantized GEMM
    }

    [Theory]
    [InlineData(1, 100, 70)]
    [InlineData(4, 2560, 33)]
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
    public void QuantizedTinyOptStaysCloseToTheReference()
    {
        var x = Fixtures.Goldens("tiny-opt");
        using var model = Blip2ForConditionalGeneration.FromPretrained(Fixtures.Dir("tiny-opt"));
        model.Opt!.QuantizeInt8();
        using var noGrad = no_grad();
        using var o = model.Forward(x["pixel_values"], x["input_ids"], x["attention_mask"]);
        double maxErr = (o.Logits - x["logits"]).abs().max().item<float>();
        double scale = x["logits"].abs().max().item<float>();
        output.WriteLine($"int8 tiny-opt: max |logit error| {maxErr:E3} (max |logit| {scale:F3})");
        Assert.True(maxErr < 0.05 * scale, $"max logit error {maxErr} against max |logit| {scale}");
        // Greedy decoding with int8 (the one-row kernel) against the float32 goldens.
        var gen = new Blip2Generator(model);
        var ids = gen.Generate(x["pixel_values"], x["gen_input_ids"], x["gen_attention_mask"], new GenerationOptions { MaxNewTokens = 12 });
        var golden = x["gen_greedy_prompt"];
        int same = 0, total = 0;
        for (int r = 0; r < 2; r++)
        {
            var g = golden[r].data<long>().ToArray().Skip(1).ToArray();
            for (int i = 0; i < Math.Min(g.Length, ids[r][0].Tokens.Count); i++, total++) if (g[i] == ids[r][0].Tokens[i]) same++;
        }
        output.WriteLine($"int8 tiny-opt greedy agreement with float32: {same}/{total}");
        Assert.True(total > 0);
    }
}
