using Blip2Sharp.Configuration;
using Blip2Sharp.Modeling.Layers;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Blip2Sharp.Modeling.QFormer;

/// <summary>The feed-forward's projection back with its post-LN residual: LayerNorm(dropout(dense(h)) + input).</summary>
public sealed class Blip2QFormerOutput : nn.Module<Tensor, Tensor, Tensor>
{
    [ComponentName(Name = "dense")] private readonly Linear _dense;
    [ComponentName(Name = "LayerNorm")] private readonly LayerNorm _layerNorm;
    private readonly double _dropout;

    public Blip2QFormerOutput(Blip2QFormerConfig c, ModelOptions o) : base(nameof(Blip2QFormerOutput))
    {
        _dense = new Linear(c.IntermediateSize, c.HiddenSize, true, o);
        _layerNorm = new LayerNorm(c.HiddenSize, c.LayerNormEps, o);
        _dropout = c.HiddenDropoutProb;
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, Tensor input)
    {
        using var scope = NewDisposeScope();
        var h = F.dropout(_dense.forward(hidden), _dropout, training);
        return _layerNorm.forward(Scalars.Add(h, input)).MoveToOuterDisposeScope();
    }
}
