using Blip2Sharp.Configuration;
using Blip2Sharp.Modeling.Layers;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Blip2Sharp.Modeling.T5;

/// <summary>T5 v1.1's gated feed-forward: wo(dropout(act(wi_0(h)) · wi_1(h))).</summary>
public sealed class T5DenseGatedActDense : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "wi_0")] private readonly Linear _wi0;
    [ComponentName(Name = "wi_1")] private readonly Linear _wi1;
    [ComponentName(Name = "wo")] private readonly Linear _wo;
    private readonly Func<Tensor, Tensor> _act;
    private readonly double _dropout;

    public T5DenseGatedActDense(T5Config c, ModelOptions o) : base(nameof(T5DenseGatedActDense))
    {
        _wi0 = new Linear(c.DModel, c.DFf, false, o);
        _wi1 = new Linear(c.DModel, c.DFf, false, o);
        _wo = new Linear(c.DFf, c.DModel, false, o);
        _act = Activations.Get(c.DenseActFn);
        _dropout = c.DropoutRate;
        RegisterComponents();
    }

    public override Tensor forward(Tensor h)
    {
        using var scope = NewDisposeScope();
        var gated = _act(_wi0.forward(h)) * _wi1.forward(h);
        return _wo.forward(F.dropout(gated, _dropout, training)).MoveToOuterDisposeScope();
    }
}
