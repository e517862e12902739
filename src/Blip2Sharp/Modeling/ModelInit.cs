using static TorchSharp.torch;

namespace Blip2Sharp.Modeling;

/// <summary>
/// Random weights for models built without a checkpoint (benchmarks, training from scratch): normal(0, std) for
/// matrices and embeddings, ones for norm weights, zeros for biases, as transformers' _init_weights does.
/// </summary>
public static class ModelInit
{
    public static void Randomize(nn.Module model, long seed, double std = 0.02)
    {
        using var noGrad = no_grad();
        var gen = new Generator((ulong)seed);
        foreach (var (name, p) in model.named_parameters())
        {
            string leaf = name[(name.LastIndexOf('.') + 1)..];
            string owner = name.Contains('.') ? name[..name.LastIndexOf('.')] : "";
            bool isNorm = owner.EndsWith("norm", StringComparison.OrdinalIgnoreCase) || owner.EndsWith("LayerNorm", StringComparison.Ordinal)
                || owner.EndsWith("layer_norm1", StringComparison.Ordinal) || owner.EndsWith("layer_norm2", StringComparison.Ordinal);
            if (isNorm && leaf == "weight") p.fill_(1.0);
            else if (leaf == "bias" || leaf.EndsWith("_bias", StringComparison.Ordinal) && p.dim() == 1) p.zero_();
            else p.normal_(0.0, std, gen);
        }
    }
}
