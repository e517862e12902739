using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Blip2Sharp.Modeling.Layers;

/// <summary>nn.Embedding: rows of weight [num, dim] looked up by id.</summary>
public sealed class Embedding : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "weight")] private readonly Parameter _weight;

    public Embedding(long num, long dim, ModelOptions o) : base(nameof(Embedding))
    {
        _weight = o.Param(num, dim);
        RegisterComponents();
    }

    public Parameter Weight => _weight;

    public override Tensor forward(Tensor ids)
    {
        long[] shape = [.. ids.shape, _weight.shape[1]];
        return _weight.index_select(0, ids.reshape(-1)).view(shape); // [..., dim]
    }
}
