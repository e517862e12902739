using Blip2Sharp.Configuration;
using Blip2Sharp.Modeling.Layers;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Blip2Sharp.Modeling.Vision;

/// <summary>fc1 → activation (exact GELU for EVA) → fc2.</summary>
public sealed class Blip2Mlp : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "fc1")] private readonly Linear _fc1;
    [ComponentName(Name = "fc2")] private readonly Linear _fc2;
    private readonly Func<Tensor, Tensor> _act;

    public Blip2Mlp(Blip2VisionConfig c, ModelOptions o) : base(nameof(Blip2Mlp))
    {
        _fc1 = new Linear(c.HiddenSize, c.IntermediateSize, true, o);
        _fc2 = new Linear(c.IntermediateSize, c.HiddenSize, true, o);
        _act = Activations.Get(c.HiddenAct);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return _fc2.forward(_act(_fc1.forward(x))).MoveToOuterDisposeScope();
    }
}
