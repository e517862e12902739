using Blip2Sharp.Configuration;
using Blip2Sharp.Modeling.Layers;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Blip2Sharp.Modeling.Opt;

/// <summary>OPT block: self-attention and a ReLU feed-forward, each with a residual; LayerNorm before (OPT-350m
/// aside, do_layer_norm_before) or after each sub-block.</summary>
public sealed class OptDecoderLayer : nn.Module
{
    [ComponentName(Name = "self_attn")] private readonly OptAttention _selfAttn;
    [ComponentName(Name = "self_attn_layer_norm")] private readonly LayerNorm _selfAttnLayerNorm;
    [ComponentName(Name = "fc1")] private readonly Linear _fc1;
    [ComponentName(Name = "fc2")] private readonly Linear _fc2;
    [ComponentName(Name = "final_layer_norm")] private readonly LayerNorm _finalLayerNorm;
    private readonly bool _normBefore;
    private readonly double _dropout, _activationDropout;
    private readonly Func<Tensor, Tensor> _act;

    public OptDecoderLayer(OptConfig c, ModelOptions o) : base(nameof(OptDecoderLayer))
    {
        if (!c.LayerNormElementwiseAffine)
            throw new InvalidConfigException("OPT with layer_norm_elementwise_affine = false is not supported.");
        _selfAttn = new OptAttention(c, o);
        _selfAttnLayerNorm = new LayerNorm(c.HiddenSize, 1e-5, o);
        _fc1 = new Linear(c.HiddenSize, c.FfnDim, c.EnableBias, o);
        _fc2 = new Linear(c.FfnDim, c.HiddenSize, c.EnableBias, o);
        _finalLayerNorm = new LayerNorm(c.HiddenSize, 1e-5, o);
        _normBefore = c.DoLayerNormBefore;
        _dropout = c.Dropout;
        _activationDropout = c.ActivationDropout;
        _act = Activations.Get(c.ActivationFunction);
        RegisterComponents();
    }

    public Tensor Forward(Tensor hidden, Tensor mask, LayerKvCache? cache = null) =>
        Block(hidden, h => _selfAttn.Forward(h, mask, cache));

    /// <summary>One decoding step of independent sequences (see <see cref="OptAttention.Step"/>).</summary>
    public Tensor Step(Tensor hidden, IReadOnlyList<DecodeSegment> segments, int layer) =>
        Block(hidden, h => _selfAttn.Step(h, segments, layer));

    private Tensor Block(Tensor hidden, Func<Tensor, Tensor> selfAttention)
    {
        using var scope = NewDisposeScope();
        var residual = hidden;
        var h = _normBefore ? _selfAttnLayerNorm.forward(hidden) : hidden;
        h = F.dropout(selfAttention(h), _dropout, training);
        h = Scalars.Add(residual, h);
        if (!_normBefore) h = _selfAttnLayerNorm.forward(h);

        residual = h;
        var f = _normBefore ? _finalLayerNorm.forward(h) : h;
        f = _fc2.forward(F.dropout(_act(_fc1.forward(f)), _activationDropout, training));
        h = Scalars.Add(residual, F.dropout(f, _dropout, training));
        if (!_normBefore) h = _finalLayerNorm.forward(h);
        return h.MoveToOuterDisposeScope();
    }
}
