using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Blip2Sharp.Modeling.Opt;

/// <summary>
/// OPT's learned positions. Quirk kept from fairseq: the table has max_position_embeddings + 2 rows and position p
/// reads row p + 2 (masked positions, whose position is −1, read row 1).
/// </summary>
public sealed class OptLearnedPositionalEmbedding : nn.Module<Tensor, Tensor>
{
    public const int Offset = 2;
    [ComponentName(Name = "weight")] private readonly Parameter _weight;

    public OptLearnedPositionalEmbedding(int maxPositions, int dim, ModelOptions o) : base(nameof(OptLearnedPositionalEmbedding))
    {
        _weight = o.Param(maxPositions + Offset, dim);
        RegisterComponents();
    }

    /// <summary>positions [B, T] → [B, T, D].</summary>
    public override Tensor forward(Tensor positions)
    {
        using var scope = NewDisposeScope();
        var idx = positions + Offset;
        if (idx.max().item<long>() >= _weight.shape[0])
            throw new ArgumentException($"sequence longer than OPT's {_weight.shape[0] - Offset} positions.");
        long[] shape = [.. positions.shape, _weight.shape[1]];
        return _weight.index_select(0, idx.reshape(-1)).view(shape).MoveToOuterDisposeScope();
    }
}
