using Blip2Sharp.Configuration;
using Blip2Sharp.Modeling;
using Blip2Sharp.Processing.Tokenizers;
using Blip2Sharp.Training;
using static TorchSharp.torch;

namespace Blip2Sharp.Tasks;

/// <summary>
/// A checkpoint's training step on given training inputs, under the names of the LAVIS training fixtures, so that any
/// checkpoint's losses and gradients can be diffed against Python: stage 1 when the inputs hold the drawn hard
/// negatives (itm_neg_image_idx, itm_neg_text_idx; "rep." rows with image_id too), stage 2 for OPT when they hold
/// LAVIS's opt_input_ids ("prompt." rows with the prompt given), for Flan-T5 when they hold output_ids ("prefix." rows
/// too). Eval mode (dropout off), as the fixtures. Outputs: loss (and loss_itc, loss_itm, loss_itg) and grad.NAME for
/// every trainable tensor, NAME as the checkpoint (or itg_head.safetensors) names it.
/// </summary>
public static class TrainingDump
{
    public static bool Applies(IReadOnlyDictionary<string, Tensor> x) =>
        x.ContainsKey("itm_neg_image_idx") || x.ContainsKey("opt_input_ids") || x.ContainsKey("output_ids");

    public static Dictionary<string, Tensor> Run(string folder, IReadOnlyDictionary<string, Tensor> x, string? prompt,
        ConfigWarnings warnings)
    {
        var config = Blip2Config.Load(folder, warnings);
        var outputs = new Dictionary<string, Tensor>();
        if (ReferenceDump.IsRetrieval(config)) Stage1(folder, x, outputs, warnings);
        else Stage2(folder, x, prompt, outputs, warnings);
        return outputs;
    }

    private static void Put(Dictionary<string, Tensor> o, string name, Tensor t) =>
        o[name] = ReferenceDump.Float32Copy(t, ownStorage: true);                   // not the live .grad

    private static void Gradients(Dictionary<string, Tensor> o, string prefix,
        IEnumerable<(string Name, TorchSharp.Modules.Parameter Param)> trainable)
    {
        foreach (var (name, p) in trainable)
        {
            if (p.grad is { } g) Put(o, prefix + "grad." + name, g);
            p.grad?.zero_();
        }
    }

    private static void Stage1(string folder, IReadOnlyDictionary<string, Tensor> x, Dictionary<string, Tensor> o,
        ConfigWarnings warnings)
    {
        string heads = Path.Combine(folder, "itg_head.safetensors");
        if (!File.Exists(heads))
            throw new Blip2Exception($"{folder} has no itg_head.safetensors: a stage-1 training step needs the ITG head and " +
                "the temperature, as `blip2 train stage1` checkpoints hold them.");
        using var model = Blip2ForImageTextRetrieval.FromPretrained(folder, warnings: warnings);
        var tokenizer = Tokenizer.FromPretrained(folder, warnings);
        using var objective = new Stage1Objective(model, tokenizer.BosTokenId ?? throw new InvalidConfigException(
            $"{folder}: the Q-Former tokenizer has no [DEC] bos token, which ITG needs."), tokenizer.PadTokenId ?? 0);
        objective.LoadHeads(heads);
        objective.eval();
        var trainable = objective.named_parameters().Where(p => p.parameter.requires_grad)
            .Select(p => (p.name.StartsWith("model.") ? p.name["model.".Length..] : p.name, p.parameter)).ToList();
        foreach (var prefix in new[] { "", "rep." })
        {
            if (!x.TryGetValue(prefix + "itm_neg_image_idx", out var negImage)) continue;
            var negatives = (negImage.data<long>().ToArray(), x[prefix + "itm_neg_text_idx"].data<long>().ToArray());
            using var losses = objective.Forward(x[prefix + "pixel_values"], x[prefix + "input_ids"], x[prefix + "attention_mask"],
                new Generator(0), x.GetValueOrDefault(prefix + "image_id"), negatives);
            using var total = losses.Total;
            Put(o, prefix + "loss_itc", losses.Itc);
            Put(o, prefix + "loss_itm", losses.Itm);
            Put(o, prefix + "loss_itg", losses.Itg);
            Put(o, prefix + "loss", total);
            total.backward();
            Gradients(o, prefix, trainable);
        }
    }

    private static void Stage2(string folder, IReadOnlyDictionary<string, Tensor> x, string? prompt, Dictionary<string, Tensor> o,
        ConfigWarnings warnings)
    {
        using var model = Blip2ForConditionalGeneration.FromPretrained(folder, warnings: warnings);
        var objective = new Stage2Objective(model, Tokenizer.FromPretrained(folder, warnings)) { Prompt = prompt ?? "" };
        model.eval();
        var trainable = model.named_parameters().Where(p => p.parameter.requires_grad).Select(p => (p.name, p.parameter)).ToList();
        var pixels = x["pixel_values"];
        foreach (var prefix in new[] { "", "prompt.", "prefix." })
        {
            Tensor loss;
            if (model.Opt is not null && x.TryGetValue(prefix + "opt_input_ids", out var ids))
            {
                if (prefix == "prompt." && prompt is null)
                    throw new ArgumentException("the inputs hold prompt.opt_input_ids: give the prompt they were made with (--prompt).");
                using var imagePrefix = model.ImagePrefix(pixels);
                loss = objective.OptLoss(imagePrefix, ids, x[prefix + "opt_attention_mask"], prefix == "prompt." ? objective.PromptLength : 0);
            }
            else if (model.T5 is not null && x.TryGetValue(prefix + "output_ids", out var outIds))
                loss = objective.T5Loss(pixels, x[prefix + "input_ids"], x[prefix + "attention_mask"], outIds,
                    x[prefix + "output_attention_mask"]);
            else continue;
            Put(o, prefix + "loss", loss);
            loss.backward();
            loss.Dispose();
            Gradients(o, prefix, trainable);
        }
    }
}
