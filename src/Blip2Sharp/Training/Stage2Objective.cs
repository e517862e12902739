using Blip2Sharp.Modeling;
using Blip2Sharp.Modeling.Layers;
using Blip2Sharp.Processing.Tokenizers;
using static TorchSharp.torch;

namespace Blip2Sharp.Training;

/// <summary>
/// Stage 2, generative learning: the Q-Former's outputs, projected, as a soft prompt of the frozen LLM. The image
/// encoder and the LLM are frozen; the Q-Former, the queries and language_projection learn. OPT: the language-modelling
/// loss on the caption (with "\n" appended so that the model learns to stop) after the soft prompt, as the reference
/// computes it. Flan-T5: prefix LM: the caption split at a random word, the prefix with the queries into the encoder,
/// the suffix as the decoder's target.
/// </summary>
public sealed class Stage2Objective
{
    public Blip2ForConditionalGeneration Model { get; }
    public Tokenizer Tokenizer { get; }
    public int MaxTextTokens { get; init; } = 32;

    public Stage2Objective(Blip2ForConditionalGeneration model, Tokenizer tokenizer)
    {
        Model = model;
        Tokenizer = tokenizer;
        foreach (var p in model.VisionModel.parameters()) p.requires_grad = false;
        var lm = (nn.Module?)model.Opt ?? model.T5!;
        foreach (var p in lm.parameters()) p.requires_grad = false;
    }

    public void TrainMode()
    {
        Model.train();
        Model.VisionModel.eval();
        ((nn.Module?)Model.Opt ?? Model.T5!).eval();
    }

    private (Tensor Ids, Tensor Mask) Encode(IReadOnlyList<string> texts) =>
        Tokenizer.PadRight([.. texts.Select(t => Tokenizer.EncodeTruncated(t, MaxTextTokens))]);

    public Tensor Loss(Tensor pixelValues, IReadOnlyList<string> captions, Random rng)
    {
        using var scope = NewDisposeScope();
        if (Model.Opt is not null)
        {
            var (ids, mask) = Encode(captions.Select(c => c + "\n").ToList());
            var labels = ids.masked_fill(mask.eq(Scalars.Of(0)), Scalars.Of(-100));
            using var o = Model.Forward(pixelValues, ids, mask, labels, useImageTokens: false);
            return o.Loss!.clone().MoveToOuterDisposeScope();
        }
        var prefixes = new List<string>();
        var suffixes = new List<string>();
        foreach (var c in captions)
        {
            var words = c.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            int cut = words.Length <= 1 ? 0 : rng.Next(1, words.Length);
            prefixes.Add(string.Join(' ', words.Take(cut)));
            suffixes.Add(string.Join(' ', words.Skip(cut)));
        }
        var (pIds, pMask) = Encode(prefixes);
        var (sIds, sMask) = Encode(suffixes);
        var t5Labels = sIds.masked_fill(sMask.eq(Scalars.Of(0)), Scalars.Of(-100));
        using var t5 = Model.Forward(pixelValues, pIds, pMask, t5Labels, useImageTokens: false);
        return t5.Loss!.clone().MoveToOuterDisposeScope();
    }
}
