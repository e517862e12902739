using Blip2Sharp.Configuration;
using Blip2Sharp.Modeling.Layers;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Blip2Sharp.Modeling.T5;

/// <summary>T5's plain feed-forward: wo(dropout(act(wi(h)))).</summary>
public sealed class T5DenseActDense : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "wi")] private readonly Linear _wi;
    [ComponentName(Name = "wo")] private readonly Linear _wo;
    private readonly Func<Tensor, Tensor> _act;
    private readonly double _dropout;

    public T5DenseActDense(T5Config c, ModelOptions o) : base(nameof(T5DenseActDense))
    {
        _wi = new Linear(c.DModel, c.DFf, false, o);
        _wo = new Linear(c.DFf, c.DModel, false, o);
        _act = Activations.Get(c.DenseActFn);
        _dropout = c.DropoutRate;
        RegisterComponents();
    }

    public override Tensor forward(Tensor h)
    {
        using var scope = NewDisposeScope();
        return _wo.forward(F.dropout(_act(_wi.forward(h)), _dropout, training)).MoveToOuterDisposeScope();
    }
}
