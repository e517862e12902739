using Blip2Sharp.Configuration;
using Blip2Sharp.Modeling;
using static TorchSharp.torch;

namespace Blip2Sharp.Tasks;

/// <summary>
/// Runs a checkpoint on named input tensors and returns every float output under the golden fixtures' names, so a
/// checkpoint can be diffed against Python tensor by tensor. Inputs that are absent skip the calls needing them.
/// </summary>
public static class ReferenceDump
{
    public static bool IsRetrieval(Blip2Config c) => c.Architectures?.Contains("Blip2ForImageTextRetrieval") == true;

    public static Dictionary<string, Tensor> Run(string modelFolder, IReadOnlyDictionary<string, Tensor> inputs, ConfigWarnings? warnings = null)
    {
        warnings ??= new ConfigWarnings();
        var config = Blip2Config.Load(modelFolder, warnings);
        using var noGrad = no_grad();
        if (IsRetrieval(config))
        {
            using var model = Blip2ForImageTextRetrieval.FromPretrained(modelFolder, warnings: warnings);
            return Retrieval(model, inputs);
        }
        using var gen = Blip2ForConditionalGeneration.FromPretrained(modelFolder, warnings: warnings);
        return Generation(gen, inputs);
    }

    private static Tensor? Get(IReadOnlyDictionary<string, Tensor> x, string name) => x.TryGetValue(name, out var t) ? t : null;

    /// <summary>
    /// t detached, as contiguous float32 on the CPU; with ownStorage a copy even where that is t's own storage (a
    /// gradient about to be zeroed). The chain runs in a dispose scope: an intermediate wrapper that nothing roots could
    /// otherwise be finalized while the next native call still reads it (see AdamW.ZeroGrad).
    /// </summary>
    internal static Tensor Float32Copy(Tensor t, bool ownStorage = false)
    {
        using var scope = NewDisposeScope();
        var copy = t.detach().to(ScalarType.Float32).cpu().contiguous();
        return (ownStorage ? copy.clone() : copy).MoveToOuterDisposeScope();
    }

    private static Dictionary<string, Tensor> Generation(Blip2ForConditionalGeneration model, IReadOnlyDictionary<string, Tensor> x)
    {
        var o = new Dictionary<string, Tensor>();
        void Put(string name, Tensor t) => o[name] = Float32Copy(t);
        void PutAll(string prefix, IReadOnlyList<Tensor>? ts)
        {
            if (ts is null) return;
            for (int i = 0; i < ts.Count; i++) Put($"{prefix}.{i}", ts[i]);
        }
        var pixels = Get(x, "pixel_values");
        var decoderIds = Get(x, "decoder_input_ids");
        bool t5 = model.T5 is not null;

        // T5 needs decoder ids or labels to run a forward (a training fixture's inputs may hold neither).
        if (pixels is not null && Get(x, "input_ids") is { } ids && (!t5 || Get(x, "labels") is not null || decoderIds is not null))
        {
            using var f = model.Forward(pixels, ids, Get(x, "attention_mask"), Get(x, "labels"),
                decoderInputIds: Get(x, "labels") is null ? decoderIds : null, outputHiddenStates: true);
            Put("vision_last_hidden_state", f.Vision.LastHiddenState);
            Put("vision_pooler_output", f.Vision.PoolerOutput);
            Put("qformer_last_hidden_state", f.QFormer.LastHiddenState);
            Put("qformer_pooler_output", f.QFormer.PoolerOutput);
            Put("language_projection", f.LanguageProjection);
            Put("logits", f.Logits);
            if (f.Loss is not null) Put("loss", f.Loss);
            PutAll("vision_hidden_states", f.Vision.HiddenStates);
            PutAll("qformer_hidden_states", f.QFormer.HiddenStates);
            if (t5)
            {
                PutAll("lm_encoder_hidden_states", f.LmEncoderHiddenStates);
                PutAll("lm_decoder_hidden_states", f.LmHiddenStates);
            }
            else PutAll("lm_hidden_states", f.LmHiddenStates);
        }
        if (pixels is not null && Get(x, "input_ids_legacy") is { } legacyIds)
        {
            // Decoder-only labels cover the text only on the legacy path; T5 labels are the decoder's either way.
            var labels = Get(x, "labels_legacy") ?? (t5 ? Get(x, "labels") : null);
            using var f = model.Forward(pixels, legacyIds, Get(x, "attention_mask_legacy"), labels,
                decoderInputIds: labels is null ? decoderIds : null, useImageTokens: false);
            Put("logits_legacy", f.Logits);
            if (f.Loss is not null) Put("loss_legacy", f.Loss);
        }
        if (pixels is not null)
        {
            using var image = model.GetImageFeatures(pixels);
            Put("blip2model_image_features.last_hidden_state", image.LastHiddenState);
            Put("blip2model_image_features.pooler_output", image.PoolerOutput);
            using var q = model.GetQFormerFeatures(pixels);
            Put("blip2model_qformer_features.last_hidden_state", q.LastHiddenState);
        }
        if (Get(x, "input_ids_legacy") is { } textIds && (!t5 || decoderIds is not null))
        {
            using var logits = model.GetTextFeatures(textIds, Get(x, "attention_mask_legacy"), decoderIds);
            Put("blip2model_text_features.logits", logits);
        }
        return o;
    }

    private static Dictionary<string, Tensor> Retrieval(Blip2ForImageTextRetrieval model, IReadOnlyDictionary<string, Tensor> x)
    {
        var o = new Dictionary<string, Tensor>();
        void Put(string name, Tensor t) => o[name] = Float32Copy(t);
        var pixels = Get(x, "pixel_values");
        var ids = Get(x, "input_ids");
        var mask = Get(x, "attention_mask") ?? (ids is null ? null : ones_like(ids));
        if (pixels is not null && ids is not null)
        {
            using var itm = model.ForwardItm(pixels, ids, mask!);
            Put("itm_logits_per_image", itm.LogitsPerImage);
            Put("itm_logits_per_text", itm.LogitsPerText);
            Put("itm_text_embeds", itm.TextEmbeds);
            Put("itm_probs", itm.Probabilities);
            using var itc = model.ForwardItc(pixels, ids, mask!);
            Put("itc_logits_per_image", itc.LogitsPerImage);
            Put("itc_logits_per_text", itc.LogitsPerText);
            Put("itc_image_embeds", itc.ImageEmbeds);
            Put("itc_text_embeds", itc.TextEmbeds);
            Put("itc_text_last_hidden_state", itc.TextLastHiddenState);
        }
        if (pixels is not null)
        {
            using var vision = model.EncodeImage(pixels);
            Put("vision_last_hidden_state", vision.LastHiddenState);
            Put("vision_pooler_output", vision.PoolerOutput);
            Put("vision_with_projection.last_hidden_state", vision.LastHiddenState);
            Put("vision_with_projection.image_embeds", model.ImageEmbeds(vision.LastHiddenState));
        }
        if (ids is not null)
        {
            var hidden = model.TextHidden(ids, mask!);
            Put("text_with_projection.last_hidden_state", hidden);
            Put("text_with_projection.text_embeds", model.TextEmbedsAllPositions(hidden));
        }
        return o;
    }
}
