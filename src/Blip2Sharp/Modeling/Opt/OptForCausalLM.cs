using Blip2Sharp.Configuration;
using Blip2Sharp.Modeling.Layers;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Blip2Sharp.Modeling.Opt;

public sealed record CausalLMOutput(Tensor Logits, IReadOnlyList<Tensor>? HiddenStates) : IDisposable
{
    public void Dispose()
    {
        Logits.Dispose();
        if (HiddenStates is not null) foreach (var t in HiddenStates) t.Dispose();
    }
}

/// <summary>
/// OPTForCausalLM: `model.decoder` and an lm_head tied to the token embeddings (the file may hold a copy of it as
/// language_model.lm_head.weight, or not).
/// </summary>
public sealed class OptForCausalLM : nn.Module
{
    [ComponentName(Name = "model")] private readonly OptModel _model;

    public OptConfig Config { get; }

    public OptForCausalLM(OptConfig c, ModelOptions o) : base(nameof(OptForCausalLM))
    {
        Config = c;
        _model = new OptModel(c, o);
        RegisterComponents();
    }

    public OptDecoder Decoder => _model.Decoder;

    /// <summary>Names of tied copies the checkpoint may store, relative to this module.</summary>
    public static IReadOnlyDictionary<string, string> TiedAliases { get; } = new Dictionary<string, string>
    {
        ["lm_head.weight"] = "model.decoder.embed_tokens.weight",
    };

    private Int8Weight? _lmHeadInt8;

    /// <summary>
    /// Weight-only int8 for CPU decoding: every decoder Linear and the (tied) lm_head use int8 copies of their
    /// weights; the embeddings, LayerNorms and biases stay float32.
    /// </summary>
    public void QuantizeInt8()
    {
        foreach (var m in _model.Decoder.modules().OfType<Linear>()) m.QuantizeInt8();
        _lmHeadInt8 ??= new Int8Weight(_model.Decoder.EmbedTokens.Weight);
    }

    /// <summary>After <see cref="QuantizeInt8"/>: false decodes with the float32 weights again, true with int8 (the
    /// benchmark alternates both in one run, as the machine's speed moves between minutes).</summary>
    public bool UseInt8
    {
        get => _useInt8;
        set
        {
            _useInt8 = value;
            foreach (var m in _model.Decoder.modules().OfType<Linear>()) m.UseInt8 = value;
        }
    }

    private bool _useInt8 = true;

    /// <summary>Token embeddings [B, T] → [B, T, word_embed_proj_dim].</summary>
    public Tensor EmbedTokens(Tensor ids) => _model.Decoder.EmbedTokens.forward(ids);

    /// <summary>
    /// inputsEmbeds [B, T, E] after the cache's positions; attentionMask [B, S] covers cached and new positions.
    /// Logits [B, T, V] (or only the last position's when lastOnly).
    /// </summary>
    public CausalLMOutput Forward(Tensor inputsEmbeds, Tensor attentionMask, KvCache? cache = null, bool outputHiddenStates = false, bool lastOnly = false)
    {
        using var scope = NewDisposeScope();
        var (h, states) = _model.Decoder.Forward(inputsEmbeds, attentionMask, cache, outputHiddenStates);
        if (lastOnly) h = h[.., ^1.., ..];
        var logits = LmHead(h);
        return new CausalLMOutput(logits.MoveToOuterDisposeScope(), states?.Select(s => s.MoveToOuterDisposeScope()).ToList());
    }

    /// <summary>One decoding step of independent sequences (<see cref="OptDecoder.Step"/>): tokens [N] → logits [N, V].</summary>
    public Tensor Step(Tensor tokens, Tensor positions, IReadOnlyList<DecodeSegment> segments)
    {
        using var scope = NewDisposeScope();
        var h = _model.Decoder.Step(EmbedTokens(tokens.unsqueeze(1)), positions, segments);   // [N, 1, E]
        return LmHead(h)[.., -1, ..].MoveToOuterDisposeScope();                               // [N, V]
    }

    private Tensor LmHead(Tensor h) => _lmHeadInt8 is not null && _useInt8 && !training
        ? _lmHeadInt8.Linear(h, null)
        : Linear.Apply(h, _model.Decoder.EmbedTokens.Weight); // tied lm_head, no bias

    /// <summary>OPTModel: holds `decoder`.</summary>
    public sealed class OptModel : nn.Module
    {
        [ComponentName(Name = "decoder")] private readonly OptDecoder _decoder;

        public OptModel(OptConfig c, ModelOptions o) : base(nameof(OptModel))
        {
            _decoder = new OptDecoder(c, o);
            RegisterComponents();
        }

        public OptDecoder Decoder => _decoder;
    }
}
