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
        [Description("safetensors with any of: pixel_values, input_ids, attention_mask, labels, decoder_input_ids, input_ids_legacy, attention_mask_legacy, labels_legacy. A fixture's golden.safetensors works as is.")]
        public string Inputs { get; init; } = "";

        [CommandOption("-o|--out <FILE>")]
        [Description("Output safetensors: every float output under the golden fixtures' names (logits, loss, vision_hidden_states.N, itm_probs, ...).")]
        public string Out { get; init; } = "";

        public override ValidationResult Validate() =>
            string.IsNullOrWhiteSpace(Model) ? ValidationResult.Error("--model DIR is required.")
            : string.IsNullOrWhiteSpace(Inputs) ? ValidationResult.Error("--inputs FILE.safetensors is required.")
            : string.IsNullOrWhiteSpace(Out) ? ValidationResult.Error("--out FILE.safetensors is required.")
            : ValidationResult.Success();
    }

    private static readonly string[] InputNames =
        ["pixel_values", "input_ids", "attention_mask", "labels", "decoder_input_ids", "input_ids_legacy", "attention_mask_legacy", "labels_legacy"];

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
        var outputs = ReferenceDump.Run(settings.Model, inputs, warnings);
        foreach (var w in warnings.Items) Blip2Cli.Warn(w);
        SafetensorsWriter.Save(settings.Out, outputs.OrderBy(kv => kv.Key, StringComparer.Ordinal), new Dictionary<string, string> { ["format"] = "pt" });
        Console.Error.WriteLine($"ran on {string.Join(", ", inputs.Keys)}; wrote {outputs.Count} tensors to {settings.Out}");
        return 0;
    }
}
