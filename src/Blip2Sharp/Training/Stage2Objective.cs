using Blip2Sharp.Configuration;
using Blip2Sharp.Modeling;
using Blip2Sharp.Modeling.Layers;
using Blip2Sharp.Processing.Tokenizers;
using static TorchSharp.torch;

namespace Blip2Sharp.Training;

/// <summary>
/// Stage 2, generative learning, as LAVIS computes it (lavis/models/blip2_models/blip2_opt.py and blip2_t5.py at
/// 506965b, checked against the train-stage2-opt and train-stage2-t5 fixtures): the Q-Former's outputs, projected, as
/// a soft prompt of the frozen LLM. The image encoder and the LLM are frozen, but not the encoder's final LayerNorm
/// (ln_vision, our vision_model.post_layernorm); the Q-Former, the queries and language_projection learn.
/// OPT: the language-modelling loss over [soft prompt ; BOS caption "\n"] with the soft prompt's targets −100, so the
/// last query position predicts the BOS (blip2_opt.py:141-152); with a prompt, its tokens (BOS included) are −100 too.
/// Flan-T5: text_input (the prompt, "" in pre-training) goes to the encoder after the queries, the caption is the
/// decoder's target (blip2_t5.py:131-160); this LAVIS has no prefix-LM split of captions.
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

    /// <summary>
    /// LAVIS's prompt: OPT captions are trained as "{prompt} {caption}" with the prompt's tokens masked (its
    /// BlipCaptionProcessor prepends "a photo of " for COCO fine-tuning); Flan-T5's encoder text. "" in pre-training.
    /// </summary>
    public string Prompt { get; init; } = "";

    public Stage2Objective(Blip2ForConditionalGeneration model, Tokenizer tokenizer)
    {
        Model = model;
        Tokenizer = tokenizer;
        foreach (var (name, p) in model.VisionModel.named_parameters()) p.requires_grad = name.StartsWith("post_layernorm.");
        var lm = (nn.Module?)model.Opt ?? model.T5!;
        foreach (var p in lm.parameters()) p.requires_grad = false;
    }

    /// <summary>
    /// Training mode as LAVIS's runner leaves it: the image encoder in eval (disabled_train, blip2_opt.py:72), the
    /// frozen language model in train mode (only requires_grad is turned off, blip2_opt.py:90): its dropout is active.
    /// </summary>
    public void TrainMode()
    {
        Model.train();
        Model.VisionModel.eval();
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
    public Tensor Loss(Tensor pixelValues, IReadOnlyList<string> captions)
    {
        var parts = Losses(pixelValues, captions);
        if (parts.Count == 1) return parts["loss"];
        using var scope = NewDisposeScope();
        var sum = parts.Values.Aggregate((a, b) => a + b).MoveToOuterDisposeScope();
        foreach (var t in parts.Values) t.Dispose();
        return sum;
    }

    /// <summary>Each loss by its name (see <see cref="Names"/>).</summary>
    public Dictionary<string, Tensor> Losses(Tensor pixelValues, IReadOnlyList<string> captions)
    {
        if (Model.Opt is null)
        {
            CheckAlignment(Model.Config, PromptAlignment);
            return new() { ["loss"] = T5Loss(pixelValues, [.. captions.Select(_ => Prompt)], captions) };
        }
        using var scope = NewDisposeScope();
        var prefix = Model.ImagePrefix(pixelValues);                                            // [B, Q, H]
        var result = new Dictionary<string, Tensor> { ["loss"] = OptLoss(prefix, captions).MoveToOuterDisposeScope() };
        if (PromptAlignment > 0)
            result["loss_align"] = (Alignment(prefix, captions) * PromptAlignment).MoveToOuterDisposeScope();
        return result;
    }

    /// <summary>The number of tokens of <see cref="Prompt"/>, BOS included (LAVIS's prompt_length); 0 without one.</summary>
    public int PromptLength => Prompt.Length > 0 ? Tokenizer.Encode(Prompt).Ids.Count : 0;

    /// <summary>OPT's loss after the soft prompt, LAVIS's targets (see the class summary).</summary>
    private Tensor OptLoss(Tensor prefix, IReadOnlyList<string> captions)
    {
        using var scope = NewDisposeScope();
        string lead = Prompt.Length > 0 ? Prompt + " " : "";
        var (ids, mask) = Encode([.. captions.Select(c => lead + c + "\n")]);                  // [B, T]: BOS … "\n", right pads
        return OptLoss(prefix, ids, mask, PromptLength).MoveToOuterDisposeScope();
    }

    /// <summary>OPT's loss from LAVIS's opt_tokens [B, T] (BOS first, right padding) with the first promptLength masked.</summary>
    public Tensor OptLoss(Tensor prefix, Tensor ids, Tensor mask, int promptLength)
    {
        using var scope = NewDisposeScope();
        ids = ids.to(Model.Device);
        mask = mask.to(Model.Device);
        var targets = ids.masked_fill(mask.eq(Scalars.Of(0)), Scalars.Of(-100));
        if (promptLength > 0) targets[.., ..Math.Min(promptLength, (int)targets.shape[1])] = -100;
        long b = prefix.shape[0], q = prefix.shape[1];
        var embeds = cat([prefix, Model.EmbedTokens(ids).to(prefix.dtype)], 1);              // [B, Q + T, H]
        var attention = cat([ones(b, q, dtype: mask.dtype, device: mask.device), mask], 1);
        var labels = cat([full(b, q, -100L, device: targets.device), targets], 1);              // [B, Q + T]
        var logits = Model.Opt!.Forward(embeds, attention).Logits;                             // [B, Q + T, V]
        var shifted = logits[.., ..^1, ..].contiguous();
        return nn.functional.cross_entropy(shifted.view(-1, shifted.shape[^1]).to(ScalarType.Float32),
            labels[.., 1..].contiguous().view(-1), ignore_index: -100).MoveToOuterDisposeScope();
    }

    /// <summary>Flan-T5's loss: text_input after the queries into the encoder, text_output the decoder's target.</summary>
    public Tensor T5Loss(Tensor pixelValues, IReadOnlyList<string> textInputs, IReadOnlyList<string> textOutputs)
    {
        using var scope = NewDisposeScope();
        var (inIds, inMask) = Encode(textInputs);
        var (outIds, outMask) = Encode(textOutputs);
        return T5Loss(pixelValues, inIds, inMask, outIds, outMask).MoveToOuterDisposeScope();
    }

    /// <summary>Flan-T5's loss from LAVIS's tokenized input_tokens and output_tokens.</summary>
    public Tensor T5Loss(Tensor pixelValues, Tensor inIds, Tensor inMask, Tensor outIds, Tensor outMask)
    {
        using var scope = NewDisposeScope();
        var targets = outIds.masked_fill(outMask.eq(Scalars.Of(0)), Scalars.Of(-100));
        using var o = Model.Forward(pixelValues, inIds, inMask, targets, decoderAttentionMask: outMask, useImageTokens: false);
        return o.Loss!.clone().MoveToOuterDisposeScope();
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
