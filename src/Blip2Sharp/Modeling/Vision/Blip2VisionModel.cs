using Blip2Sharp.Configuration;
using Blip2Sharp.Modeling.Layers;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Blip2Sharp.Modeling.Vision;

/// <summary>The vision tower's outputs: every hidden state is optional (collected on request).</summary>
public sealed record VisionOutput(Tensor LastHiddenState, Tensor PoolerOutput, IReadOnlyList<Tensor>? HiddenStates) : IDisposable
{
    public void Dispose()
    {
        LastHiddenState.Dispose();
        PoolerOutput.Dispose();
        if (HiddenStates is not null) foreach (var t in HiddenStates) t.Dispose();
    }
}

/// <summary>Blip2VisionModel: embeddings → pre-LN encoder (Blip2Encoder's `layers`) → post_layernorm.</summary>
public sealed class Blip2VisionModel : nn.Module
{
    [ComponentName(Name = "embeddings")] private readonly Blip2VisionEmbeddings _embeddings;
    [ComponentName(Name = "encoder")] private readonly Blip2Encoder _encoder;
    [ComponentName(Name = "post_layernorm")] private readonly LayerNorm _postLayernorm;

    public Blip2VisionConfig Config { get; }

    /// <summary>post_layernorm: LAVIS's ln_vision, which trains in both stages while the encoder is frozen.</summary>
    public LayerNorm PostLayernorm => _postLayernorm;

    /// <summary>The encoder's last output before post_layernorm [B, 1 + N, D] (LAVIS's frozen visual_encoder).</summary>
    public Tensor EncoderOutput(Tensor pixelValues, int dropLastLayers = 0)
    {
        using var scope = NewDisposeScope();
        return Encode(pixelValues, dropLastLayers, null).MoveToOuterDisposeScope();
    }

    /// <summary>Embeddings, then the encoder layers but the last dropLastLayers; each layer's input added to states.</summary>
    private Tensor Encode(Tensor pixelValues, int dropLastLayers, List<Tensor>? states)
    {
        if (dropLastLayers < 0 || dropLastLayers >= _encoder.Layers.Count)
            throw new ArgumentOutOfRangeException(nameof(dropLastLayers), $"can drop 0 to {_encoder.Layers.Count - 1} of {_encoder.Layers.Count} layers.");
        var h = _embeddings.forward(pixelValues);
        foreach (var layer in _encoder.Layers.Take(_encoder.Layers.Count - dropLastLayers))
        {
            states?.Add(h);
            h = layer.forward(h);
        }
        return h;
    }

    public Blip2VisionModel(Blip2VisionConfig c, ModelOptions o) : base(nameof(Blip2VisionModel))
    {
        Config = c;
        _embeddings = new Blip2VisionEmbeddings(c, o);
        _encoder = new Blip2Encoder(c, o);
        _postLayernorm = new LayerNorm(c.HiddenSize, c.LayerNormEps, o);
        RegisterComponents();
    }

    /// <summary>
    /// pixel_values [B, 3, H, W] → last_hidden_state [B, 1 + N, D], pooler_output [B, D]. dropLastLayers skips the
    /// final layers, as the paper does with EVA-CLIP (its last layer removed, the second-last output used).
    /// </summary>
    public VisionOutput Forward(Tensor pixelValues, bool outputHiddenStates = false, int dropLastLayers = 0)
    {
        using var scope = NewDisposeScope();
        var states = outputHiddenStates ? new List<Tensor>() : null;
        var h = Encode(pixelValues, dropLastLayers, states);
        states?.Add(h);
        var last = _postLayernorm.forward(h);
        // The reference applies post_layernorm to the class token a second time for pooler_output.
        var pooled = _postLayernorm.forward(last[.., 0, ..]);
        return new VisionOutput(last.MoveToOuterDisposeScope(), pooled.MoveToOuterDisposeScope(),
            states?.Select(s => s.MoveToOuterDisposeScope()).ToList());
    }

    /// <summary>Blip2Encoder: holds the `layers` list.</summary>
    public sealed class Blip2Encoder : nn.Module
    {
        [ComponentName(Name = "layers")] private readonly TorchSharp.Modules.ModuleList<Blip2EncoderLayer> _layers;

        public Blip2Encoder(Blip2VisionConfig c, ModelOptions o) : base(nameof(Blip2Encoder))
        {
            _layers = new TorchSharp.Modules.ModuleList<Blip2EncoderLayer>([.. Enumerable.Range(0, c.NumHiddenLayers).Select(_ => new Blip2EncoderLayer(c, o))]);
            RegisterComponents();
        }

        public IList<Blip2EncoderLayer> Layers => _layers;
    }
}
