using Blip2Sharp.Configuration;
using Blip2Sharp.Modeling.Layers;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Blip2Sharp.Modeling.T5;

/// <summary>
/// T5 attention: no scaling of the scores (folded into the initialisation), an additive position bias
/// (relative-position buckets, learned in the first layer of each stack and reused by the others, mask included).
/// </summary>
public sealed class T5Attention : nn.Module
{
    [ComponentName(Name = "q")] private readonly Linear _q;
    [ComponentName(Name = "k")] private readonly Linear _k;
    [ComponentName(Name = "v")] private readonly Linear _v;
    [ComponentName(Name = "o")] private readonly Linear _o;
    [ComponentName(Name = "relative_attention_bias")] private readonly Embedding? _relativeAttentionBias;
    private readonly int _heads, _dKv, _numBuckets, _maxDistance;
    private readonly bool _isDecoder;
    private readonly double _dropout;

    public T5Attention(T5Config c, bool isDecoder, bool hasRelativeAttentionBias, ModelOptions o) : base(nameof(T5Attention))
    {
        _heads = c.NumHeads;
        _dKv = c.DKv;
        _numBuckets = c.RelativeAttentionNumBuckets;
        _maxDistance = c.RelativeAttentionMaxDistance;
        _isDecoder = isDecoder;
        _dropout = c.DropoutRate;
        _q = new Linear(c.DModel, c.InnerDim, false, o);
        _k = new Linear(c.DModel, c.InnerDim, false, o);
        _v = new Linear(c.DModel, c.InnerDim, false, o);
        _o = new Linear(c.InnerDim, c.DModel, false, o);
        if (hasRelativeAttentionBias) _relativeAttentionBias = new Embedding(c.RelativeAttentionNumBuckets, c.NumHeads, o);
        RegisterComponents();
    }

    public bool HasRelativeAttentionBias => _relativeAttentionBias is not null;

    private Tensor Heads(Tensor x) => x.view(x.shape[0], x.shape[1], _heads, _dKv).transpose(1, 2); // [B, H, T, Dkv]

    /// <summary>Projects the encoder output into this cross-attention's keys and values once per input, contiguous
    /// [B, H, S, Dkv] (read whole at every decoding step, by <see cref="DecodeAttention.Cross"/>).</summary>
    public (Tensor Key, Tensor Value) ProjectKeyValue(Tensor states)
    {
        using var scope = NewDisposeScope();
        return (Heads(_k.forward(states)).contiguous().MoveToOuterDisposeScope(), Heads(_v.forward(states)).contiguous().MoveToOuterDisposeScope());
    }

    /// <summary>Bucket of each relative position (memory − context), as _relative_position_bucket computes it.</summary>
    public static Tensor RelativePositionBucket(Tensor relativePosition, bool bidirectional, int numBuckets, int maxDistance)
    {
        using var scope = NewDisposeScope();
        var buckets = zeros_like(relativePosition);
        var rp = relativePosition;
        if (bidirectional)
        {
            numBuckets /= 2;
            buckets = buckets + rp.gt(0).to(ScalarType.Int64) * numBuckets;
            rp = rp.abs();
        }
        else
        {
            rp = -rp.clamp_max(0);
        }
        int maxExact = numBuckets / 2;
        var isSmall = rp.lt(maxExact);
        var large = (rp.to(ScalarType.Float32) / maxExact).log() / Math.Log((double)maxDistance / maxExact) * (numBuckets - maxExact);
        var largeIdx = (large.to(ScalarType.Int64) + maxExact).clamp_max(numBuckets - 1);
        return (buckets + where(isSmall, rp, largeIdx)).MoveToOuterDisposeScope();
    }

    /// <summary>The learned bias [1, H, queryLength, keyLength] for queries at positions past .. past + T.</summary>
    public Tensor ComputeBias(long queryLength, long keyLength, long past, Device device)
    {
        using var scope = NewDisposeScope();
        var context = arange(past, past + queryLength, dtype: ScalarType.Int64, device: device).unsqueeze(1); // [T, 1]
        var memory = arange(keyLength, dtype: ScalarType.Int64, device: device).unsqueeze(0);                  // [1, S]
        var bucket = RelativePositionBucket(memory - context, !_isDecoder, _numBuckets, _maxDistance);       // [T, S]
        var values = _relativeAttentionBias!.forward(bucket);                                                 // [T, S, H]
        return values.permute(2, 0, 1).unsqueeze(0).MoveToOuterDisposeScope();                               // [1, H, T, S]
    }

    /// <summary>
    /// hidden [B, T, d_model]. Self-attention: keys/values from hidden (after the cache); cross-attention: from
    /// crossKv. positionBias [B|1, H, T, S] includes the mask.
    /// </summary>
    public Tensor Forward(Tensor hidden, Tensor positionBias, LayerKvCache? cache = null, (Tensor Key, Tensor Value)? crossKv = null)
    {
        using var scope = NewDisposeScope();
        long b = hidden.shape[0], t = hidden.shape[1];
        if (!training && t == 1)
        {
            // One new position (decoding): the attention in one managed pass (same values, see DecodeAttention); T5
            // does not scale the scores.
            if (crossKv is { } fixedKv && DecodeAttention.AppliesToCross(hidden, positionBias, fixedKv.Key, fixedKv.Value, _heads))
                return _o.forward(DecodeAttention.Cross(_q.forward(hidden), fixedKv.Key, fixedKv.Value, positionBias, _heads, 1.0)).MoveToOuterDisposeScope();
            if (crossKv is null && cache is not null && DecodeAttention.Applies(hidden, positionBias, cache, _heads))
                return _o.forward(DecodeAttention.Forward(_q.forward(hidden), _k.forward(hidden), _v.forward(hidden), positionBias, cache, _heads, 1.0)).MoveToOuterDisposeScope();
        }
        var q = Heads(_q.forward(hidden));
        Tensor k, v;
        if (crossKv is { } kv) (k, v) = kv;
        else
        {
            k = Heads(_k.forward(hidden));
            v = Heads(_v.forward(hidden));
            if (cache is not null) (k, v) = cache.Append(k, v);
        }
        var scores = q.matmul(k.transpose(3, 2)) + positionBias;                    // [B, H, T, S]
        var probs = F.dropout(scores.to(ScalarType.Float32).softmax(-1).to(scores.dtype), _dropout, training);
        var context = probs.matmul(v).transpose(1, 2).reshape(b, t, -1);           // [B, T, H·Dkv]
        return _o.forward(context).MoveToOuterDisposeScope();
    }
}
