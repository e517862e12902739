using Blip2Sharp.Configuration;
using Blip2Sharp.Modeling.Layers;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Blip2Sharp.Modeling.QFormer;

/// <summary>
/// The Q-Former's text embeddings (retrieval checkpoints, top-level `embeddings`): word + absolute position
/// embeddings, positions counted from 0 for the text; query embeddings, when given, are put in front. There is no
/// LayerNorm here: the Q-Former's own `layernorm` normalises the whole concatenation.
/// </summary>
public sealed class Blip2TextEmbeddings : nn.Module
{
    [ComponentName(Name = "word_embeddings")] private readonly Embedding _wordEmbeddings;
    [ComponentName(Name = "position_embeddings")] private readonly Embedding _positionEmbeddings;

    public Blip2TextEmbeddings(Blip2QFormerConfig c, ModelOptions o) : base(nameof(Blip2TextEmbeddings))
    {
        _wordEmbeddings = new Embedding(c.VocabSize, c.HiddenSize, o);
        _positionEmbeddings = new Embedding(c.MaxPositionEmbeddings, c.HiddenSize, o);
        RegisterComponents();
    }

    public TorchSharp.Modules.Parameter WordEmbeddings => _wordEmbeddings.Weight;

    /// <summary>input_ids [B, T] → [B, T, E]; with queryEmbeds [B, Q, E] → [B, Q + T, E].</summary>
    public Tensor Forward(Tensor inputIds, Tensor? queryEmbeds = null, long pastLength = 0)
    {
        using var scope = NewDisposeScope();
        long t = inputIds.shape[1];
        if (pastLength + t > _positionEmbeddings.Weight.shape[0])
            throw new ArgumentException($"text of {pastLength + t} tokens exceeds the Q-Former's {_positionEmbeddings.Weight.shape[0]} positions.");
        var positions = arange(pastLength, pastLength + t, dtype: ScalarType.Int64, device: inputIds.device).unsqueeze(0); // [1, T]
        var emb = _wordEmbeddings.forward(inputIds) + _positionEmbeddings.forward(positions);
        if (queryEmbeds is not null) emb = cat([queryEmbeds.to(emb.dtype), emb], 1); // [B, Q + T, E]
        return emb.MoveToOuterDisposeScope();
    }
}
