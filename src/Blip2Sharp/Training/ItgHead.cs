using Blip2Sharp.Configuration;
using Blip2Sharp.Modeling.Layers;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;
using Parameter = TorchSharp.Modules.Parameter;

namespace Blip2Sharp.Training;

/// <summary>
/// The BERT-style prediction head of stage-1 ITG (LAVIS's cls.predictions): dense → GELU → LayerNorm, then the
/// decoder tied to the Q-Former's word embeddings plus its own bias. Saved as itg_head.transform.dense.*,
/// itg_head.transform.LayerNorm.*, itg_head.bias.
/// </summary>
public sealed class ItgHead : nn.Module
{
    [ComponentName(Name = "transform")] private readonly Transform _transform;
    [ComponentName(Name = "bias")] private readonly Parameter _bias;

    public ItgHead(Blip2QFormerConfig c, Modeling.ModelOptions o) : base(nameof(ItgHead))
    {
        _transform = new Transform(c, o);
        _bias = o.Param(c.VocabSize);
        RegisterComponents();
    }

    /// <summary>hidden [B, T, E] → scores [B, T, V] with the tied word embeddings [V, E].</summary>
    public Tensor Forward(Tensor hidden, Tensor wordEmbeddings)
    {
        using var scope = NewDisposeScope();
        return F.linear(_transform.Forward(hidden), wordEmbeddings, _bias).MoveToOuterDisposeScope();
    }

    public sealed class Transform : nn.Module
    {
        [ComponentName(Name = "dense")] private readonly Linear _dense;
        [ComponentName(Name = "LayerNorm")] private readonly LayerNorm _layerNorm;
        private readonly Func<Tensor, Tensor> _act;

        public Transform(Blip2QFormerConfig c, Modeling.ModelOptions o) : base(nameof(Transform))
        {
            _dense = new Linear(c.HiddenSize, c.HiddenSize, true, o);
            _layerNorm = new LayerNorm(c.HiddenSize, c.LayerNormEps, o);
            _act = Activations.Get(c.HiddenAct);
            RegisterComponents();
        }

        public Tensor Forward(Tensor h)
        {
            using var scope = NewDisposeScope();
            return _layerNorm.forward(_act(_dense.forward(h))).MoveToOuterDisposeScope();
        }
    }
}
