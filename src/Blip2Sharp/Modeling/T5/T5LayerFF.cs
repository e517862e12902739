using Blip2Sharp.Configuration;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Blip2Sharp.Modeling.T5;

/// <summary>h + dropout(FF(RMSNorm(h))), the FF dense or gated as the config says.</summary>
public sealed class T5LayerFF : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "DenseReluDense")] private readonly nn.Module<Tensor, Tensor> _denseReluDense;
    [ComponentName(Name = "layer_norm")] private readonly T5LayerNorm _layerNorm;
    private readonly double _dropout;

    public T5LayerFF(T5Config c, ModelOptions o) : base(nameof(T5LayerFF))
    {
        _denseReluDense = c.IsGatedAct ? new T5DenseGatedActDense(c, o) : new T5DenseActDense(c, o);
        _layerNorm = new T5LayerNorm(c.DModel, c.LayerNormEpsilon, o);
        _dropout = c.DropoutRate;
        RegisterComponents();
    }

    public override Tensor forward(Tensor h)
    {
        using var scope = NewDisposeScope();
        var f = _denseReluDense.forward(_layerNorm.forward(h));
        return (h + F.dropout(f, _dropout, training)).MoveToOuterDisposeScope();
    }
}
