using static TorchSharp.torch;

namespace Blip2Sharp.Modeling;

/// <summary>
/// Additive attention masks as the reference builds them: 0 where attention is allowed and the dtype's minimum
/// (not -inf) where it is not, so a query row with every key masked gets a uniform softmax, as in the reference.
/// </summary>
public static class AttentionMasks
{
    public static double MinValue(ScalarType dtype) => dtype switch
    {
        ScalarType.Float16 => -65504.0,
        ScalarType.BFloat16 => -3.3895313892515355e38,
        ScalarType.Float64 => double.MinValue,
        _ => float.MinValue,
    };

    /// <summary>[B, S] 1/0 padding mask → [B, 1, 1, S] additive mask (get_extended_attention_mask, encoder form).</summary>
    public static Tensor Padding(Tensor mask, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var m = mask.to(dtype).unsqueeze(1).unsqueeze(1); // [B, 1, 1, S]
        return ((1.0 - m) * MinValue(dtype)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// [B, S] padding mask → [B, 1, T, S] causal + padding mask for T new queries after S - T cached positions
    /// (_prepare_4d_causal_attention_mask: masked_fill with the minimum, never a sum of two minima).
    /// </summary>
    public static Tensor CausalWithPadding(Tensor mask, long queryLength, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        long b = mask.shape[0], s = mask.shape[1], past = s - queryLength;
        var q = arange(queryLength, device: mask.device).unsqueeze(1) + past; // [T, 1]
        var k = arange(s, device: mask.device).unsqueeze(0);                  // [1, S]
        var blocked = k.gt(q).unsqueeze(0).unsqueeze(0).expand(b, 1, queryLength, s); // [B, 1, T, S]
        var padded = mask.eq(0).unsqueeze(1).unsqueeze(1).expand(b, 1, queryLength, s);
        var result = zeros(new long[] { b, 1, queryLength, s }, dtype, mask.device)
            .masked_fill(blocked.logical_or(padded), MinValue(dtype));
        return result.MoveToOuterDisposeScope();
    }
}
