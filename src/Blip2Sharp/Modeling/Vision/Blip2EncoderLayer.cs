using Blip2Sharp.Configuration;
using Blip2Sharp.Modeling.Layers;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Blip2Sharp.Modeling.Vision;

/// <summary>Pre-LN transformer block: x + attn(LN1(x)), then x + mlp(LN2(x)).</summary>
public sealed class Blip2EncoderLayer : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "self_attn")] private readonly Blip2Attention _selfAttn;
    [ComponentName(Name = "layer_norm1")] private readonly LayerNorm _layerNorm1;
    [ComponentName(Name = "mlp")] private readonly Blip2Mlp _mlp;
    [ComponentName(Name = "layer_norm2")] private readonly LayerNorm _layerNorm2;

    public Blip2EncoderLayer(Blip2VisionConfig c, ModelOptions o) : base(nameof(Blip2EncoderLayer))
    {
        _selfAttn = new Blip2Attention(c, o);
        _layerNorm1 = new LayerNorm(c.HiddenSize, c.LayerNormEps, o);
        _mlp = new Blip2Mlp(c, o);
        _layerNorm2 = new LayerNorm(c.HiddenSize, c.LayerNormEps, o);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = Scalars.Add(x, _selfAttn.forward(_layerNorm1.forward(x)));
        h = Scalars.Add(h, _mlp.forward(_layerNorm2.forward(h)));
        return h.MoveToOuterDisposeScope();
    }
}
