using System.ComponentModel;
using Blip2Sharp.Configuration;
using Blip2Sharp.Loading;
using Blip2Sharp.Tasks;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Blip2Sharp.Cli.Commands;

public sealed class DumpCommand : Command<DumpCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("-m|--model <DIR>")]
        [Description("Checkpoint folder (Blip2ForConditionalGeneration or Blip2ForImageTextRetrieval).")]
        public string Model { get; init; } = "";

        [CommandOption("-i|--inputs <FILE>")]
        [Description("safetensors with any of: pixel_values, input_ids, attention_mask, labels, decoder_input_ids, " +
            "input_ids_legacy, attention_mask_legacy, labels_legacy; training inputs (LAVIS fixtures: itm_neg_image_idx, " +
            "itm_neg_text_idx, image_id, opt_input_ids, output_ids, ... and their rep. / prompt. / prefix. rows) add the " +
            "training losses and every gradient. A fixture's golden.safetensors works as is.")]
        public string Inputs { get; init; } = "";

        [CommandOption("--prompt <TEXT>")]
        [Description("Training inputs of stage 2 with a prompt (prompt.opt_input_ids): the prompt they were made with.")]
        public string? Prompt { get; init; }

        [CommandOption("-o|--out <FILE>")]
        [Description("Output safetensors: every float output under the golden fixtures' names (logits, loss, vision_hidden_states.N, itm_probs, ...).")]
        public string Out { get; init; } = "";

        public override ValidationResult Validate() =>
            string.IsNullOrWhiteSpace(Model) ? ValidationResult.Error("--model DIR is required.")
            : string.IsNullOrWhiteSpace(Inputs) ? ValidationResult.Error("--inputs FILE.safetensors is required.")
            : string.IsNullOrWhiteSpace(Out) ? ValidationResult.Error("--out FILE.safetensors is required.")
            : ValidationResult.Success();
    }

    private static readonly string[] ForwardInputs =
        ["pixel_values", "input_ids", "attention_mask", "labels", "decoder_input_ids", "input_ids_legacy", "attention_mask_legacy", "labels_legacy"];

    private static readonly string[] TrainingInputs =
    [
        .. new[] { "", "rep." }.SelectMany(p => new[] { "pixel_values", "input_ids", "attention_mask", "itm_neg_image_idx",
            "itm_neg_text_idx", "image_id" }.Select(n => p + n)),
        .. new[] { "", "prompt." }.SelectMany(p => new[] { "opt_input_ids", "opt_attention_mask" }.Select(n => p + n)),
        .. new[] { "", "prefix." }.SelectMany(p => new[] { "input_ids", "attention_mask", "output_ids", "output_attention_mask" }
            .Select(n => p + n)),
    ];

    private static readonly string[] InputNames = [.. ForwardInputs.Concat(TrainingInputs).Distinct()];

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var warnings = new ConfigWarnings();
        Dictionary<string, TorchSharp.torch.Tensor> inputs;
        using (var file = SafetensorsFile.Open(settings.Inputs))
        {
            inputs = InputNames.Where(file.Contains).ToDictionary(n => n, file.ReadTensor);
        }
        if (inputs.Count == 0)
            throw new ArgumentException($"{settings.Inputs} holds none of the inputs ({string.Join(", ", InputNames)}).");
        var forward = inputs.Where(kv => ForwardInputs.Contains(kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value);
        var outputs = forward.ContainsKey("pixel_values") && forward.Count > 1
            ? ReferenceDump.Run(settings.Model, forward, warnings) : [];
        if (TrainingDump.Applies(inputs))
            foreach (var (name, t) in TrainingDump.Run(settings.Model, inputs, settings.Prompt, warnings)) outputs[name] = t;
        foreach (var w in warnings.Items) Blip2Cli.Warn(w);
        SafetensorsWriter.Save(settings.Out, outputs.OrderBy(kv => kv.Key, StringComparer.Ordinal), new Dictionary<string, string> { ["format"] = "pt" });
        Console.Error.WriteLine($"ran on {string.Join(", ", inputs.Keys)}; wrote {outputs.Count} tensors to {settings.Out}");
        return 0;
    }
}
