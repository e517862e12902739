using Blip2Sharp.Configuration;
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

    /// <summary>
    /// Weight of the prompt alignment, 0 (the paper's stage 2) by default; decoder-only language models only. Not in
    /// the paper: the mean, over the soft prompt's positions, of the squared distance between each projected query and
    /// the word embedding of the token that <see cref="PromptText"/>(caption) has there when placed as
    /// <see cref="SoftPromptLayout"/> places it. It asks the queries to read, to the frozen LM, as that text would: a
    /// small LM answers questions about a written description but not about a soft prompt that is only trained to
    /// yield captions (see the demo model's notes in README.md). Still captions only: no question is involved.
    /// </summary>
    public double PromptAlignment { get; init; }

    /// <summary>The text the soft prompt is aligned with, from the caption; by default the caption itself.</summary>
    public Func<string, string>? PromptText { get; init; }

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

    /// <summary>Throws when a prompt alignment is asked of an encoder-decoder LM, for which it is not defined.</summary>
    public static void CheckAlignment(Blip2Config config, double weight)
    {
        if (weight > 0 && config.TextConfig is not OptConfig)
            throw new ArgumentException("prompt_alignment applies to decoder-only language models (OPT), not to Flan-T5; leave it at 0 for this checkpoint.");
    }

    /// <summary>The losses' names: "loss" (the language-modelling loss) and, with <see cref="PromptAlignment"/>, "loss_align" (weighted).</summary>
    public IReadOnlyList<string> Names => PromptAlignment > 0 ? ["loss", "loss_align"] : ["loss"];

    /// <summary>Their sum.</summary>
    public Tensor Loss(Tensor pixelValues, IReadOnlyList<string> captions, Random rng)
    {
        var parts = Losses(pixelValues, captions, rng);
        if (parts.Count == 1) return parts["loss"];
        using var scope = NewDisposeScope();
        var sum = parts.Values.Aggregate((a, b) => a + b).MoveToOuterDisposeScope();
        foreach (var t in parts.Values) t.Dispose();
        return sum;
    }

    /// <summary>Each loss by its name (see <see cref="Names"/>).</summary>
    public Dictionary<string, Tensor> Losses(Tensor pixelValues, IReadOnlyList<string> captions, Random rng)
    {
        using var scope = NewDisposeScope();
        if (Model.Opt is not null)
        {
            var (ids, mask) = Encode(captions.Select(c => c + "\n").ToList());
            var labels = ids.masked_fill(mask.eq(Scalars.Of(0)), Scalars.Of(-100));
            using var o = Model.Forward(pixelValues, ids, mask, labels, useImageTokens: false);
            var result = new Dictionary<string, Tensor> { ["loss"] = o.Loss!.clone().MoveToOuterDisposeScope() };
            if (PromptAlignment > 0)
                result["loss_align"] = (Alignment(o.LanguageProjection!, captions) * PromptAlignment).MoveToOuterDisposeScope();
            return result;
        }
        CheckAlignment(Model.Config, PromptAlignment);
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
        return new() { ["loss"] = t5.Loss!.clone().MoveToOuterDisposeScope() };
    }

    /// <summary>Mean over batch and positions of ‖soft prompt − word embeddings of the placed text‖².</summary>
    private Tensor Alignment(Tensor prefix, IReadOnlyList<string> captions)
    {
        int length = (int)prefix.shape[1];
        int bos = Tokenizer.BosTokenId ?? throw new InvalidOperationException("the tokenizer has no bos token.");
        int pad = Tokenizer.PadTokenId ?? throw new InvalidOperationException("the tokenizer has no pad token.");
        var rows = captions.Select(c => SoftPromptLayout.Place(Tokenizer.Encode(PromptText?.Invoke(c) ?? c, addSpecialTokens: false).Ids, length, bos, pad)).ToList();
        var ids = tensor(rows.SelectMany(r => r.Select(x => (long)x)).ToArray()).reshape(rows.Count, length);   // [B, Q]
        Tensor target;
        using (no_grad()) target = Model.EmbedTokens(ids);                                                       // [B, Q, H]
        return (prefix - target.to(prefix.dtype)).pow(2).sum(-1).mean();
    }
}
