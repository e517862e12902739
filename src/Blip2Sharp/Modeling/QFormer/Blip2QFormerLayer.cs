using Blip2Sharp.Configuration;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Blip2Sharp.Modeling.QFormer;

/// <summary>
/// One Q-Former layer: self-attention over [queries ; text]; on layers where layer_idx % cross_attention_frequency
/// == 0, cross-attention to the image for the query positions only; then the query positions go through their own
/// feed-forward (intermediate_query / output_query) and the text positions through the text one
/// (intermediate / output, present only when use_qformer_text_input).
/// </summary>
public sealed class Blip2QFormerLayer : nn.Module
{
    [ComponentName(Name = "attention")] private readonly Blip2QFormerAttention _attention;
    [ComponentName(Name = "crossattention")] private readonly Blip2QFormerAttention? _crossattention;
    [ComponentName(Name = "intermediate")] private readonly Blip2QFormerIntermediate? _intermediate;
    [ComponentName(Name = "output")] private readonly Blip2QFormerOutput? _output;
    [ComponentName(Name = "intermediate_query")] private readonly Blip2QFormerIntermediate _intermediateQuery;
    [ComponentName(Name = "output_query")] private readonly Blip2QFormerOutput _outputQuery;

    public bool HasCrossAttention => _crossattention is not null;

    public Blip2QFormerLayer(Blip2QFormerConfig c, int layerIdx, ModelOptions o) : base(nameof(Blip2QFormerLayer))
    {
        _attention = new Blip2QFormerAttention(c, false, o);
        if (c.HasCrossAttention(layerIdx)) _crossattention = new Blip2QFormerAttention(c, true, o);
        if (c.UseQFormerTextInput)
        {
            _intermediate = new Blip2QFormerIntermediate(c, o);
            _output = new Blip2QFormerOutput(c, o);
        }
        _intermediateQuery = new Blip2QFormerIntermediate(c, o);
        _outputQuery = new Blip2QFormerOutput(c, o);
        RegisterComponents();
    }

    /// <summary>hidden [B, T, E] whose first queryLength positions are queries. Returns the output and self-attention K/V.</summary>
    public (Tensor Output, Tensor Key, Tensor Value) Forward(Tensor hidden, Tensor? mask, int queryLength,
        Tensor? encoderHidden, Tensor? encoderMask, (Tensor Key, Tensor Value)? past = null)
    {
        using var scope = NewDisposeScope();
        var (attn, k, v) = _attention.Forward(hidden, mask, past: past);
        Tensor output;
        if (queryLength > 0)
        {
            var queries = attn[.., ..queryLength, ..];                       // [B, Q, E]
            if (_crossattention is not null)
            {
                if (encoderHidden is null) throw new ArgumentException("the Q-Former's query positions need image features (encoder_hidden_states).");
                queries = _crossattention.Forward(queries, encoderMask, encoderHidden).Output;
            }
            output = _outputQuery.forward(_intermediateQuery.forward(queries), queries);
            if (attn.shape[1] > queryLength)
            {
                var text = attn[.., queryLength.., ..];                      // [B, T - Q, E]
                output = cat([output, TextFeedForward(text)], 1);            // [B, T, E]
            }
        }
        else
        {
            output = TextFeedForward(attn);
        }
        return (output.MoveToOuterDisposeScope(), k.MoveToOuterDisposeScope(), v.MoveToOuterDisposeScope());
    }

    private Tensor TextFeedForward(Tensor text)
    {
        if (_intermediate is null || _output is null)
            throw new InvalidOperationException("this Q-Former has no text feed-forward (use_qformer_text_input is false): it takes queries only.");
        return _output.forward(_intermediate.forward(text), text);
    }
}
