using Blip2Sharp.Modeling;
using Blip2Sharp.Modeling.Opt;
using Blip2Sharp.Modeling.T5;
using static TorchSharp.torch;

namespace Blip2Sharp.Generation;

/// <summary>
/// A language model's decoding state: the prompt is processed once (prefill; for T5 the encoder and every
/// cross-attention K/V), then one token per step against the KV cache. Rows can be reordered or expanded (beams).
/// </summary>
public interface IDecoderState : IDisposable
{
    /// <summary>Logits [N, V] for the next token; tokens [N] are the ones chosen at the previous step (null: first step).</summary>
    Tensor Next(Tensor? tokens);

    /// <summary>Keeps the rows in <paramref name="index"/>, in that order (repeats allowed).</summary>
    void Select(Tensor index);

    /// <summary>The ids the reference's processors see before any new token (T5: the decoder start token).</summary>
    IReadOnlyList<int> InitialHistory { get; }
}

public sealed class OptDecoderState(OptForCausalLM lm, Tensor inputsEmbeds, Tensor attentionMask, int maxNewTokens) : IDecoderState
{
    private readonly KvCache _cache = new(lm.Decoder.NumLayers, inputsEmbeds.shape[1] + maxNewTokens);
    private Tensor _mask = attentionMask.to(ScalarType.Int64).detach().DetachFromDisposeScope();
    private Tensor? _embeds = inputsEmbeds;

    public IReadOnlyList<int> InitialHistory => [];

    public Tensor Next(Tensor? tokens)
    {
        using var scope = NewDisposeScope();
        Tensor embeds;
        if (_embeds is not null)
        {
            embeds = _embeds;
            _embeds = null;
        }
        else
        {
            var t = tokens ?? throw new ArgumentNullException(nameof(tokens));
            ExtendMask();
            embeds = lm.EmbedTokens(t.unsqueeze(1));                                                            // [N, 1, E]
        }
        using var output = lm.Forward(embeds, _mask, _cache, lastOnly: true);
        return output.Logits[.., -1, ..].to(ScalarType.Float32).MoveToOuterDisposeScope();                      // [N, V]
    }

    /// <summary>Rows of this state in the stacked step.</summary>
    public long Rows => _mask.shape[0];

    private void ExtendMask()
    {
        var mask = cat([_mask, ones(_mask.shape[0], 1, dtype: ScalarType.Int64, device: _mask.device)], 1); // [N, S + 1]
        _mask.Dispose();
        _mask = mask.DetachFromDisposeScope();
    }

    /// <summary>
    /// One decoding step of several prefilled states at once, tokens [ΣN] stacked in the order of
    /// <paramref name="states"/>: every weight is read once for all rows, and each row computes what
    /// <see cref="Next"/> of its own state would (the same masks, positions and kernels). Logits [ΣN, V].
    /// </summary>
    public static Tensor StepMany(OptForCausalLM lm, IReadOnlyList<OptDecoderState> states, Tensor tokens)
    {
        using var scope = NewDisposeScope();
        var dtype = lm.Decoder.EmbedTokens.Weight.dtype;
        var segments = new List<DecodeSegment>(states.Count);
        var positions = new List<Tensor>(states.Count);
        foreach (var s in states)
        {
            if (s._embeds is not null) throw new InvalidOperationException("a state joins a stacked step after its prefill.");
            s.ExtendMask();
            positions.Add(OptDecoder.Positions(s._mask, s._mask.shape[1] - 1));                                  // [N, 1]
            segments.Add(new DecodeSegment((int)s.Rows, s._cache, AttentionMasks.CausalWithPadding(s._mask, 1, dtype)));
        }
        var logits = lm.Step(tokens, cat(positions, 0), segments);
        return logits.to(ScalarType.Float32).MoveToOuterDisposeScope();                                          // [ΣN, V]
    }

    public void Select(Tensor index)
    {
        _cache.Reorder(index);
        var m = _mask.index_select(0, index).DetachFromDisposeScope();
        _mask.Dispose();
        _mask = m;
    }

    public void Dispose()
    {
        _cache.Dispose();
        _mask.Dispose();
    }
}

public sealed class T5DecoderState : IDecoderState
{
    private readonly T5ForConditionalGeneration _lm;
    private readonly KvCache _cache;
    private List<(Tensor Key, Tensor Value)> _crossKv;
    private Tensor _encoderMask;
    private readonly int _start;
    private bool _started;

    public T5DecoderState(T5ForConditionalGeneration lm, Tensor inputsEmbeds, Tensor attentionMask, int maxNewTokens)
    {
        _lm = lm;
        _start = lm.Config.DecoderStartTokenId ?? throw new InvalidConfigException("text_config.decoder_start_token_id is needed to generate with T5.");
        _cache = new KvCache(lm.Decoder.Blocks.Count, maxNewTokens + 1);
        using var scope = NewDisposeScope();
        _encoderMask = attentionMask.to(ScalarType.Int64).detach().MoveToOuterDisposeScope();
        var (enc, _) = lm.Encoder.Forward(inputsEmbeds, _encoderMask);
        _crossKv = lm.Decoder.CrossKeyValues(enc).Select(kv => (kv.Key.MoveToOuterDisposeScope(), kv.Value.MoveToOuterDisposeScope())).ToList();
        _encoderMask.DetachFromDisposeScope();
        foreach (var (k, v) in _crossKv) { k.DetachFromDisposeScope(); v.DetachFromDisposeScope(); }
    }

    public IReadOnlyList<int> InitialHistory => [_start];

    public Tensor Next(Tensor? tokens)
    {
        using var scope = NewDisposeScope();
        long n = _encoderMask.shape[0];
        Tensor ids = _started ? (tokens ?? throw new ArgumentNullException(nameof(tokens))) : full(n, _start, ScalarType.Int64, _encoderMask.device);
        _started = true;
        var (h, _) = _lm.Decoder.Forward(_lm.EmbedTokens(ids.unsqueeze(1)), null, _cache, encoderMask: _encoderMask, crossKv: _crossKv);
        return _lm.LmHead(h)[.., -1, ..].to(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    public void Select(Tensor index)
    {
        _cache.Reorder(index);
        var kv = _crossKv.Select(p => (p.Key.index_select(0, index).DetachFromDisposeScope(), p.Value.index_select(0, index).DetachFromDisposeScope())).ToList();
        foreach (var (k, v) in _crossKv) { k.Dispose(); v.Dispose(); }
        _crossKv = kv;
        var m = _encoderMask.index_select(0, index).DetachFromDisposeScope();
        _encoderMask.Dispose();
        _encoderMask = m;
    }

    public void Dispose()
    {
        _cache.Dispose();
        foreach (var (k, v) in _crossKv) { k.Dispose(); v.Dispose(); }
        _encoderMask.Dispose();
    }
}
