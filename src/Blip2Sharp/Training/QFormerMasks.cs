using static TorchSharp.torch;

namespace Blip2Sharp.Training;

/// <summary>
/// The three self-attention masks of stage 1 over [Q queries ; T text tokens], as 1 (may attend) / 0 matrices
/// [B, Q + T, Q + T] (row = the attending position); padded text keys are never visible.
/// ITC, uni-modal: queries see queries, text sees text. ITM, bi-directional: everyone sees everyone.
/// ITG, multimodal causal: queries see queries only; text sees every query and the text up to itself.
/// </summary>
public static class QFormerMasks
{
    public static Tensor UniModal(int queries, Tensor textMask) => Build(queries, textMask, (qi, qk) => qi == qk, causal: false);

    public static Tensor BiDirectional(int queries, Tensor textMask) => Build(queries, textMask, (_, _) => true, causal: false);

    public static Tensor MultimodalCausal(int queries, Tensor textMask) => Build(queries, textMask, (rowQ, colQ) => !rowQ || colQ, causal: true);

    /// <summary>allowed(isQueryRow, isQueryColumn) decides the blocks; causal restricts text→text to earlier positions.</summary>
    private static Tensor Build(int queries, Tensor textMask, Func<bool, bool, bool> allowed, bool causal)
    {
        using var scope = NewDisposeScope();
        long b = textMask.shape[0], t = textMask.shape[1], n = queries + t;
        var device = textMask.device;                                             // built where the text mask lives
        var m = zeros([n, n], ScalarType.Int64, device);
        var rowsQ = arange(n, device: device).lt(queries);
        for (int r = 0; r < 2; r++)
        {
            for (int c = 0; c < 2; c++)
            {
                bool rowQ = r == 0, colQ = c == 0;
                if (!allowed(rowQ, colQ)) continue;
                var block = (rowQ ? rowsQ : rowsQ.logical_not()).unsqueeze(1).logical_and((colQ ? rowsQ : rowsQ.logical_not()).unsqueeze(0));
                if (causal && !rowQ && !colQ) block = block.logical_and(ones(n, n, dtype: ScalarType.Bool, device: device).tril());
                m = m.logical_or(block).to(ScalarType.Int64);
            }
        }
        var keys = cat([ones(b, queries, dtype: ScalarType.Int64, device: device), textMask.to(ScalarType.Int64)], 1); // [B, Q + T]
        return (m.unsqueeze(0) * keys.unsqueeze(1)).MoveToOuterDisposeScope();                           // [B, Q + T, Q + T]
    }

    /// <summary>1/0 mask [B, N, N] → the additive mask [B, 1, N, N] the Q-Former takes.</summary>
    public static Tensor Additive(Tensor mask01, ScalarType dtype = ScalarType.Float32)
    {
        using var scope = NewDisposeScope();
        return ((1.0 - mask01.to(dtype)) * Modeling.AttentionMasks.MinValue(dtype)).unsqueeze(1).MoveToOuterDisposeScope();
    }
}
