using Blip2Sharp.Configuration;
using Blip2Sharp.Modeling.Layers;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Blip2Sharp.Modeling.Opt;

/// <summary>
/// OPTDecoder: token embeddings (no scaling), learned positions, optional project_in/out (when
/// word_embed_proj_dim ≠ hidden_size), the layers, and a final LayerNorm for pre-LN models.
/// </summary>
public sealed class OptDecoder : nn.Module
{
    [ComponentName(Name = "embed_tokens")] private readonly Embedding _embedTokens;
    [ComponentName(Name = "embed_positions")] private readonly OptLearnedPositionalEmbedding _embedPositions;
    [ComponentName(Name = "project_out")] private readonly Linear? _projectOut;
    [ComponentName(Name = "project_in")] private readonly Linear? _projectIn;
    [ComponentName(Name = "final_layer_norm")] private readonly LayerNorm? _finalLayerNorm;
    [ComponentName(Name = "layers")] private readonly TorchSharp.Modules.ModuleList<OptDecoderLayer> _layers;
    private readonly double _dropout;

    public OptDecoder(OptConfig c, ModelOptions o) : base(nameof(OptDecoder))
    {
        _embedTokens = new Embedding(c.VocabSize, c.WordEmbedProjDim, o);
        _embedPositions = new OptLearnedPositionalEmbedding(c.MaxPositionEmbeddings, c.HiddenSize, o);
        if (c.WordEmbedProjDim != c.HiddenSize)
        {
            _projectOut = new Linear(c.HiddenSize, c.WordEmbedProjDim, false, o);
            _projectIn = new Linear(c.WordEmbedProjDim, c.HiddenSize, false, o);
        }
        // Only pre-LN models (and not the ones converted with _remove_final_layer_norm) have the final LayerNorm.
        if (c.DoLayerNormBefore && !c.RemoveFinalLayerNorm) _finalLayerNorm = new LayerNorm(c.HiddenSize, 1e-5, o);
        _layers = new TorchSharp.Modules.ModuleList<OptDecoderLayer>([.. Enumerable.Range(0, c.NumHiddenLayers).Select(_ => new OptDecoderLayer(c, o))]);
        _dropout = c.Dropout;
        RegisterComponents();
    }

    public Embedding EmbedTokens => _embedTokens;
    public int NumLayers => _layers.Count;

    /// <summary>
    /// The positions of the tokens after the first <paramref name="past"/> ([B, S - past]): OPT's positions come from
    /// the mask, so left padding does not shift them: cumsum(mask)·mask − 1.
    /// </summary>
    public static Tensor Positions(Tensor attentionMask, long past)
    {
        using var scope = NewDisposeScope();
        var mask = attentionMask.to(ScalarType.Int64);
        return (mask.cumsum(1) * mask - 1)[.., (int)past..].MoveToOuterDisposeScope();
    }

    public (Tensor Hidden, List<Tensor>? States) Forward(Tensor inputsEmbeds, Tensor attentionMask, KvCache? cache, bool outputHiddenStates)
    {
        using var scope = NewDisposeScope();
        long t = inputsEmbeds.shape[1];
        long past = cache?.Length ?? 0;
        if (attentionMask.shape[1] != past + t)
            throw new ArgumentException($"attention_mask covers {attentionMask.shape[1]} positions, expected {past + t}.");
        var positions = Positions(attentionMask, past);                          // [B, T]
        var h = inputsEmbeds;
        if (_projectIn is not null) h = _projectIn.forward(h);
        h = Scalars.Add(h, _embedPositions.forward(positions));
        h = F.dropout(h, _dropout, training);
        var causal = AttentionMasks.CausalWithPadding(attentionMask, t, h.dtype); // [B, 1, T, S]

        var states = outputHiddenStates ? new List<Tensor>() : null;
        for (int i = 0; i < _layers.Count; i++)
        {
            states?.Add(h);
            h = _layers[i].Forward(h, causal, cache?.Layers[i]);
        }
        if (_finalLayerNorm is not null) h = _finalLayerNorm.forward(h);
        if (_projectOut is not null) h = _projectOut.forward(h);
        states?.Add(h);
        return (h.MoveToOuterDisposeScope(), states?.Select(s => s.MoveToOuterDisposeScope()).ToList());
    }

    /// <summary>
    /// One decoding step of independent sequences: embeds [N, 1, W] of each row's newest token at positions [N, 1]
    /// (OPT's mask-counted positions), rows grouped into segments that each hold their own cache and additive mask.
    /// A row gets the values it would get decoding alone (<see cref="Forward"/> with that segment's cache and mask).
    /// </summary>
    public Tensor Step(Tensor embeds, Tensor positions, IReadOnlyList<DecodeSegment> segments)
    {
        using var scope = NewDisposeScope();
        var h = embeds;
        if (_projectIn is not null) h = _projectIn.forward(h);
        h = Scalars.Add(h, _embedPositions.forward(positions));
        for (int i = 0; i < _layers.Count; i++) h = _layers[i].Step(h, segments, i);
        if (_finalLayerNorm is not null) h = _finalLayerNorm.forward(h);
        if (_projectOut is not null) h = _projectOut.forward(h);
        return h.MoveToOuterDisposeScope();
    }
}

/// <summary>Rows of one sequence in a stacked decoding step: how many, their cache, their additive mask [Rows, 1, 1, S].</summary>
public sealed record DecodeSegment(int Rows, KvCache Cache, Tensor Mask);
