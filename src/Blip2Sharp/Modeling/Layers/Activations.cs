using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Blip2Sharp.Modeling.Layers;

/// <summary>transformers' ACT2FN for the activations BLIP-2 checkpoints name.</summary>
public static class Activations
{
    public static Func<Tensor, Tensor> Get(string name) => name switch
    {
        "gelu" => x => F.gelu(x),                        // exact (erf) GELU
        "gelu_new" or "gelu_pytorch_tanh" => GeluNew,    // tanh approximation (T5 v1.1, Flan-T5)
        "relu" => x => F.relu(x),
        "silu" or "swish" => x => F.silu(x),
        "quick_gelu" => x => x * (1.702 * x).sigmoid(),
        _ => throw new InvalidConfigException($"activation '{name}' is not supported (gelu, gelu_new, relu, silu, quick_gelu)."),
    };

    /// <summary>NewGELUActivation, written out as the reference does: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).</summary>
    private static Tensor GeluNew(Tensor x)
    {
        using var scope = NewDisposeScope();
        var inner = (x + x.pow(3.0) * 0.044715) * Math.Sqrt(2.0 / Math.PI);
        return (x * 0.5 * (inner.tanh() + 1.0)).MoveToOuterDisposeScope();
    }
}
