using Blip2Sharp.Configuration;
using Blip2Sharp.Modeling.Layers;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Blip2Sharp.Modeling.QFormer;

/// <summary>The feed-forward's expansion: activation(dense(h)).</summary>
public sealed class Blip2QFormerIntermediate : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "dense")] private readonly Linear _dense;
    private readonly Func<Tensor, Tensor> _act;

    public Blip2QFormerIntermediate(Blip2QFormerConfig c, ModelOptions o) : base(nameof(Blip2QFormerIntermediate))
    {
        _dense = new Linear(c.HiddenSize, c.IntermediateSize, true, o);
        _act = Activations.Get(c.HiddenAct);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return _act(_dense.forward(x)).MoveToOuterDisposeScope();
    }
}
