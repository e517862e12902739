using Blip2Sharp.Configuration;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Blip2Sharp.Modeling.T5;

/// <summary>
/// The T5 encoder or decoder: blocks (the first owns the relative-position bias), a final RMS norm. It takes
/// embeddings: the shared token embedding lives in T5ForConditionalGeneration (the reference's
/// encoder.embed_tokens / decoder.embed_tokens are aliases of `shared`).
/// </summary>
public sealed class T5Stack : nn.Module
{
    [ComponentName(Name = "block")] private readonly TorchSharp.Modules.ModuleList<T5Block> _block;
    [ComponentName(Name = "final_layer_norm")] private readonly T5LayerNorm _finalLayerNorm;
    private readonly bool _isDecoder;
    private readonly double _dropout;

    public T5Stack(T5Config c, bool isDecoder, ModelOptions o) : base(nameof(T5Stack))
    {
        _isDecoder = isDecoder;
        int layers = isDecoder ? c.NumDecoderLayers : c.NumLayers;
        _block = new TorchSharp.Modules.ModuleList<T5Block>([.. Enumerable.Range(0, layers).Select(i => new T5Block(c, isDecoder, i == 0, o))]);
        _finalLayerNorm = new T5LayerNorm(c.DModel, c.LayerNormEpsilon, o);
        _dropout = c.DropoutRate;
        RegisterComponents();
    }

    public IList<T5Block> Blocks => _block;

    /// <summary>
    /// Cross-attention keys/values of every decoder block for an encoder output [B, S, d] (computed once per
    /// input and reused at every decoding step).
    /// </summary>
    public IReadOnlyList<(Tensor Key, Tensor Value)> CrossKeyValues(Tensor encoderHidden) =>
        _block.Select(b => b.CrossAttention!.ProjectKeyValue(encoderHidden)).ToList();

    /// <summary>
    /// inputsEmbeds [B, T, d]; attentionMask [B, S] over cached + new positions (null: all visible).
    /// Decoder: encoderMask [B, S_enc] and crossKv (or encoderHidden to project them now).
    /// </summary>
    public (Tensor Hidden, List<Tensor>? States) Forward(Tensor inputsEmbeds, Tensor? attentionMask, KvCache? cache = null,
        Tensor? encoderHidden = null, Tensor? encoderMask = null, IReadOnlyList<(Tensor Key, Tensor Value)>? crossKv = null,
        bool outputHiddenStates = false)
    {
        using var scope = NewDisposeScope();
        long b = inputsEmbeds.shape[0], t = inputsEmbeds.shape[1];
        long past = cache?.Length ?? 0;
        var dtype = inputsEmbeds.dtype;
        attentionMask ??= ones(b, past + t, dtype: ScalarType.Int64, device: inputsEmbeds.device);
        var mask = _isDecoder
            ? AttentionMasks.CausalWithPadding(attentionMask, t, dtype)   // [B, 1, T, S]
            : AttentionMasks.Padding(attentionMask, dtype);                // [B, 1, 1, S]
        var selfBias = _block[0].SelfAttention.ComputeBias(t, past + t, past, inputsEmbeds.device) + mask; // [B, H, T, S]

        Tensor? encoderBias = null;
        if (_isDecoder)
        {
            if (crossKv is null)
            {
                if (encoderHidden is null) throw new ArgumentException("the T5 decoder needs the encoder output.");
                crossKv = CrossKeyValues(encoderHidden);
            }
            long sEnc = crossKv[0].Key.shape[2];
            encoderMask ??= ones(b, sEnc, dtype: ScalarType.Int64, device: inputsEmbeds.device);
            encoderBias = AttentionMasks.Padding(encoderMask, dtype);     // [B, 1, 1, S_enc]
        }

        var h = F.dropout(inputsEmbeds, _dropout, training);
        var states = outputHiddenStates ? new List<Tensor>() : null;
        for (int i = 0; i < _block.Count; i++)
        {
            states?.Add(h);
            h = _block[i].Forward(h, selfBias, cache?.Layers[i], encoderBias, crossKv?[i]);
        }
        h = F.dropout(_finalLayerNorm.forward(h), _dropout, training);
        states?.Add(h);
        return (h.MoveToOuterDisposeScope(), states?.Select(s => s.MoveToOuterDisposeScope()).ToList());
    }
}
