using Blip2Sharp.Configuration;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Blip2Sharp.Modeling.T5;

/// <summary>T5Block: `layer` = [self-attention, (cross-attention,) feed-forward].</summary>
public sealed class T5Block : nn.Module
{
    [ComponentName(Name = "layer")] private readonly TorchSharp.Modules.ModuleList<nn.Module> _layer;
    private readonly T5LayerSelfAttention _self;
    private readonly T5LayerCrossAttention? _cross;
    private readonly T5LayerFF _ff;

    public T5Block(T5Config c, bool isDecoder, bool hasRelativeAttentionBias, ModelOptions o) : base(nameof(T5Block))
    {
        _self = new T5LayerSelfAttention(c, isDecoder, hasRelativeAttentionBias, o);
        if (isDecoder) _cross = new T5LayerCrossAttention(c, o);
        _ff = new T5LayerFF(c, o);
        _layer = _cross is null
            ? new TorchSharp.Modules.ModuleList<nn.Module>(_self, _ff)
            : new TorchSharp.Modules.ModuleList<nn.Module>(_self, _cross, _ff);
        register_module("layer", _layer);
    }

    public T5Attention SelfAttention => _self.Attention;
    public T5Attention? CrossAttention => _cross?.Attention;

    public Tensor Forward(Tensor h, Tensor selfBias, LayerKvCache? cache, Tensor? encoderBias, (Tensor Key, Tensor Value)? crossKv)
    {
        using var scope = NewDisposeScope();
        h = _self.Forward(h, selfBias, cache);
        if (_cross is not null) h = _cross.Forward(h, encoderBias!, crossKv!.Value);
        return _ff.forward(h).MoveToOuterDisposeScope();
    }
}
