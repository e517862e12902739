using Blip2Sharp.Configuration;
using Blip2Sharp.Modeling.Layers;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Blip2Sharp.Modeling.T5;

public sealed record Seq2SeqLMOutput(Tensor Logits, Tensor? Loss, Tensor EncoderLastHiddenState,
    IReadOnlyList<Tensor>? EncoderHiddenStates, IReadOnlyList<Tensor>? DecoderHiddenStates) : IDisposable
{
    public void Dispose()
    {
        Logits.Dispose();
        Loss?.Dispose();
        EncoderLastHiddenState.Dispose();
        if (EncoderHiddenStates is not null) foreach (var t in EncoderHiddenStates) t.Dispose();
        if (DecoderHiddenStates is not null) foreach (var t in DecoderHiddenStates) t.Dispose();
    }
}

/// <summary>T5ForConditionalGeneration: `shared` embedding, `encoder`, `decoder`, `lm_head`.</summary>
public sealed class T5ForConditionalGeneration : nn.Module
{
    [ComponentName(Name = "shared")] private readonly Embedding _shared;
    [ComponentName(Name = "encoder")] private readonly T5Stack _encoder;
    [ComponentName(Name = "decoder")] private readonly T5Stack _decoder;
    [ComponentName(Name = "lm_head")] private readonly Linear? _lmHead;

    public T5Config Config { get; }

    public T5ForConditionalGeneration(T5Config c, ModelOptions o) : base(nameof(T5ForConditionalGeneration))
    {
        Config = c;
        _shared = new Embedding(c.VocabSize, c.DModel, o);
        _encoder = new T5Stack(c, false, o);
        _decoder = new T5Stack(c, true, o);
        if (!c.TieWordEmbeddings) _lmHead = new Linear(c.DModel, c.VocabSize, false, o);
        RegisterComponents();
    }

    public T5Stack Encoder => _encoder;
    public T5Stack Decoder => _decoder;

    /// <summary>Names of tied copies a checkpoint may store, relative to this module.</summary>
    public IReadOnlyDictionary<string, string> TiedAliases => Config.TieWordEmbeddings
        ? new Dictionary<string, string>
        {
            ["encoder.embed_tokens.weight"] = "shared.weight",
            ["decoder.embed_tokens.weight"] = "shared.weight",
            ["lm_head.weight"] = "shared.weight",
        }
        : new Dictionary<string, string>
        {
            ["encoder.embed_tokens.weight"] = "shared.weight",
            ["decoder.embed_tokens.weight"] = "shared.weight",
        };

    public Tensor EmbedTokens(Tensor ids) => _shared.forward(ids);

    /// <summary>Decoder hidden states [B, T, d] → logits; tied heads rescale by d_model^-0.5 first, as the reference.</summary>
    public Tensor LmHead(Tensor decoderHidden)
    {
        using var scope = NewDisposeScope();
        var logits = _lmHead is not null
            ? _lmHead.forward(decoderHidden)
            : Linear.Apply(Scalars.Mul(decoderHidden, Math.Pow(Config.DModel, -0.5)), _shared.Weight);
        return logits.MoveToOuterDisposeScope();
    }

    /// <summary>_shift_right: [decoder_start] + labels[:, :-1], with −100 replaced by the pad id.</summary>
    public Tensor ShiftRight(Tensor labels)
    {
        int start = Config.DecoderStartTokenId ?? throw new InvalidConfigException("text_config.decoder_start_token_id is needed to shift labels right (T5 uses 0).");
        int pad = Config.PadTokenId ?? throw new InvalidConfigException("text_config.pad_token_id is needed to shift labels right.");
        using var scope = NewDisposeScope();
        var shifted = cat([full(labels.shape[0], 1, start, ScalarType.Int64, labels.device), labels[.., ..^1]], 1);
        return shifted.masked_fill(shifted.eq(-100), pad).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The reference's forward with inputs_embeds: encoder over inputsEmbeds [B, S, d] with attentionMask [B, S];
    /// decoder over decoderInputIds (or shift_right(labels)); loss = mean CE over labels ≠ −100.
    /// </summary>
    public Seq2SeqLMOutput Forward(Tensor inputsEmbeds, Tensor attentionMask, Tensor? decoderInputIds = null, Tensor? labels = null,
        Tensor? decoderAttentionMask = null, bool outputHiddenStates = false)
    {
        using var scope = NewDisposeScope();
        var (enc, encStates) = _encoder.Forward(inputsEmbeds, attentionMask, outputHiddenStates: outputHiddenStates);
        decoderInputIds ??= labels is not null ? ShiftRight(labels) : throw new ArgumentException("T5 needs decoder_input_ids or labels.");
        var (dec, decStates) = _decoder.Forward(EmbedTokens(decoderInputIds), decoderAttentionMask, encoderHidden: enc,
            encoderMask: attentionMask, outputHiddenStates: outputHiddenStates);
        var logits = LmHead(dec);
        Tensor? loss = labels is null ? null
            : F.cross_entropy(logits.view(-1, logits.shape[^1]), labels.reshape(-1), ignore_index: -100);
        return new Seq2SeqLMOutput(logits.MoveToOuterDisposeScope(), loss?.MoveToOuterDisposeScope(), enc.MoveToOuterDisposeScope(),
            encStates?.Select(s => s.MoveToOuterDisposeScope()).ToList(), decStates?.Select(s => s.MoveToOuterDisposeScope()).ToList());
    }
}
