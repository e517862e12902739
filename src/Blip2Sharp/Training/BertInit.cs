using Blip2Sharp.Loading;
using Blip2Sharp.Modeling;
using static TorchSharp.torch;

namespace Blip2Sharp.Training;

/// <summary>
/// Initialises a Q-Former from a BERT checkpoint folder (bert-base-uncased layout), as the paper does: embeddings,
/// self-attention and feed-forward of every layer come from BERT (the feed-forward into both the text and the query
/// FFN), the MLM head's transform and bias into the ITG head; cross-attention, the queries and the retrieval heads keep
/// their random initialisation. Vocabulary rows beyond BERT's ([DEC]) keep theirs too.
/// </summary>
public static class BertInit
{
    public static int Apply(Stage1Objective objective, string bertFolder, long seed)
    {
        var model = objective.Model;
        using var noGrad = no_grad();
        ModelInit.Randomize(model.QFormer, seed);
        ModelInit.Randomize(model.Embeddings, seed + 1);
        ModelInit.Randomize(model.VisionProjection, seed + 2);
        ModelInit.Randomize(model.TextProjection, seed + 3);
        ModelInit.Randomize(model.ItmHead, seed + 4);
        model.QueryTokens.normal_(0, 0.02);

        using var bert = CheckpointReader.Open(bertFolder);
        string p = bert.Contains("bert.embeddings.word_embeddings.weight") ? "bert." : "";
        if (!bert.Contains(p + "embeddings.word_embeddings.weight"))
            throw new CheckpointMismatchException($"{bertFolder}: not a BERT checkpoint (no embeddings.word_embeddings.weight).");
        var targets = objective.named_parameters().ToDictionary(x => x.name, x => x.parameter);
        int copied = 0;

        void Copy(string from, string to, bool partialRows = false)
        {
            if (!bert.Contains(from)) throw new CheckpointMismatchException($"{bertFolder}: lacks {from}.");
            var target = targets[to];
            using var read = bert.Read(from); // held in a local: rooted while to() reads it (see AdamW.ZeroGrad)
            using var src = read.to(target.dtype);
            if (partialRows && src.dim() == 2 && src.shape[1] == target.shape[1])
            {
                long rows = Math.Min(src.shape[0], target.shape[0]);
                target.narrow(0, 0, rows).copy_(src.narrow(0, 0, rows));
            }
            else if (src.shape.SequenceEqual(target.shape)) target.copy_(src);
            else throw new CheckpointMismatchException($"{from} [{string.Join(", ", src.shape)}] does not fit {to} [{string.Join(", ", target.shape)}].");
            copied++;
        }

        Copy(p + "embeddings.word_embeddings.weight", "model.embeddings.word_embeddings.weight", partialRows: true);
        Copy(p + "embeddings.position_embeddings.weight", "model.embeddings.position_embeddings.weight", partialRows: true);
        Copy(p + "embeddings.LayerNorm.weight", "model.qformer.layernorm.weight");
        Copy(p + "embeddings.LayerNorm.bias", "model.qformer.layernorm.bias");
        int layers = model.Config.QFormerConfig.NumHiddenLayers;
        for (int i = 0; i < layers; i++)
        {
            string b = $"{p}encoder.layer.{i}.", q = $"model.qformer.encoder.layer.{i}.";
            foreach (var w in new[] { "weight", "bias" })
            {
                foreach (var m in new[] { "query", "key", "value" }) Copy($"{b}attention.self.{m}.{w}", $"{q}attention.attention.{m}.{w}");
                Copy($"{b}attention.output.dense.{w}", $"{q}attention.output.dense.{w}");
                Copy($"{b}attention.output.LayerNorm.{w}", $"{q}attention.output.LayerNorm.{w}");
                foreach (var ffn in new[] { "intermediate", "intermediate_query" }) Copy($"{b}intermediate.dense.{w}", $"{q}{ffn}.dense.{w}");
                foreach (var ffn in new[] { "output", "output_query" })
                {
                    Copy($"{b}output.dense.{w}", $"{q}{ffn}.dense.{w}");
                    Copy($"{b}output.LayerNorm.{w}", $"{q}{ffn}.LayerNorm.{w}");
                }
            }
        }
        if (bert.Contains("cls.predictions.bias"))
        {
            foreach (var w in new[] { "weight", "bias" })
            {
                Copy($"cls.predictions.transform.dense.{w}", $"itg_head.transform.dense.{w}");
                Copy($"cls.predictions.transform.LayerNorm.{w}", $"itg_head.transform.LayerNorm.{w}");
            }
            using var bias = bert.Read("cls.predictions.bias");
            long rows = Math.Min(bias.shape[0], targets["itg_head.bias"].shape[0]);
            targets["itg_head.bias"].narrow(0, 0, rows).copy_(bias.narrow(0, 0, rows));
            copied++;
        }
        return copied;
    }
}
