using Blip2Sharp.Configuration;
using Blip2Sharp.Modeling.Layers;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Blip2Sharp.Modeling.QFormer;

/// <summary>
/// BERT multi-head attention. As self-attention, keys and values come from the hidden states (after optional
/// cached keys/values, which stage-1 ITG uses to let text see the queries); as cross-attention they come from
/// the image features (key/value project from the vision width).
/// </summary>
public sealed class Blip2QFormerMultiHeadAttention : nn.Module
{
    [ComponentName(Name = "query")] private readonly Linear _query;
    [ComponentName(Name = "key")] private readonly Linear _key;
    [ComponentName(Name = "value")] private readonly Linear _value;
    private readonly int _heads, _headDim;
    private readonly double _dropout;

    public Blip2QFormerMultiHeadAttention(Blip2QFormerConfig c, bool isCrossAttention, ModelOptions o) : base(nameof(Blip2QFormerMultiHeadAttention))
    {
        if (c.PositionEmbeddingType != "absolute")
            throw new InvalidConfigException($"qformer_config.position_embedding_type '{c.PositionEmbeddingType}' is not supported; BLIP-2 uses 'absolute'.");
        _heads = c.NumAttentionHeads;
        _headDim = c.HeadDim;
        _dropout = c.AttentionProbsDropoutProb;
        int kvIn = isCrossAttention ? c.EncoderHiddenSize : c.HiddenSize;
        _query = new Linear(c.HiddenSize, c.HiddenSize, true, o);
        _key = new Linear(kvIn, c.HiddenSize, true, o);
        _value = new Linear(kvIn, c.HiddenSize, true, o);
        RegisterComponents();
    }

    private Tensor Heads(Tensor x) // [B, T, H·Dh] → [B, H, T, Dh]
    {
        long b = x.shape[0], t = x.shape[1];
        return x.view(b, t, _heads, _headDim).permute(0, 2, 1, 3);
    }

    /// <summary>
    /// hidden [B, T, E]; mask additive [B, 1, 1|T, S]; encoderHidden [B, S_img, E_img] for cross-attention;
    /// past (K, V) [B, H, P, Dh] prepended to self-attention keys/values. Returns the context [B, T, E] and the
    /// keys/values used (for caching).
    /// </summary>
    public (Tensor Context, Tensor Key, Tensor Value) Forward(Tensor hidden, Tensor? mask, Tensor? encoderHidden = null, (Tensor Key, Tensor Value)? past = null)
    {
        using var scope = NewDisposeScope();
        var kvSource = encoderHidden ?? hidden;
        var k = Heads(_key.forward(kvSource));
        var v = Heads(_value.forward(kvSource));
        if (encoderHidden is null && past is { } p)
        {
            k = cat([p.Key, k], 2); // [B, H, P + T, Dh]
            v = cat([p.Value, v], 2);
        }
        var q = Heads(_query.forward(hidden));
        var scores = Scalars.Mul(q.matmul(k.transpose(-1, -2)), 1.0 / Math.Sqrt(_headDim)); // [B, H, T, S]
        if (mask is not null) scores = Scalars.Add(scores, mask);
        var probs = F.dropout(scores.softmax(-1), _dropout, training);
        var context = probs.matmul(v).permute(0, 2, 1, 3).contiguous();  // [B, T, H, Dh]
        context = context.view(context.shape[0], context.shape[1], -1);   // [B, T, E]
        return (context.MoveToOuterDisposeScope(), k.MoveToOuterDisposeScope(), v.MoveToOuterDisposeScope());
    }
}
