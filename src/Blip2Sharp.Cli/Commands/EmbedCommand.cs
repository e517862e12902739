using System.ComponentModel;
using System.Text.Json;
using Blip2Sharp.Loading;
using Blip2Sharp.Tasks;
using Spectre.Console;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Blip2Sharp.Cli.Commands;

public sealed class EmbedCommand : Command<EmbedCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("-m|--model <DIR>")]
        [Description("A retrieval checkpoint folder (Blip2ForImageTextRetrieval).")]
        public string Model { get; init; } = "";

        [CommandOption("-i|--image <PATH>")]
        [Description("An image to embed (normalised image_embeds, Q × D); repeat for several.")]
        public string[] Images { get; init; } = [];

        [CommandOption("-t|--text <TEXT>")]
        [Description("A text to embed (normalised text_embeds, D); repeat for several.")]
        public string[] Texts { get; init; } = [];

        [CommandOption("--multimodal")]
        [Description("Also the query outputs of image i read together with text i (Q × hidden); needs as many texts as images.")]
        public bool Multimodal { get; init; }

        [CommandOption("-o|--out <FILE>")]
        [Description("Write .safetensors (image_embeds, text_embeds, multimodal_embeds) or .json; default: JSON on standard output.")]
        public string? Out { get; init; }

        public override ValidationResult Validate() =>
            string.IsNullOrWhiteSpace(Model) ? ValidationResult.Error("--model DIR is required.")
            : Images.Length + Texts.Length == 0 ? ValidationResult.Error("give at least one --image or --text.")
            : Multimodal && Images.Length != Texts.Length ? ValidationResult.Error("--multimodal pairs image i with text i: give as many texts as images.")
            : ValidationResult.Success();
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        using var retriever = Blip2Retriever.FromPretrained(settings.Model);
        foreach (var w in retriever.Warnings) Blip2Cli.Warn(w);
        var tensors = new Dictionary<string, Tensor>();
        ImageFeatures? images = null;
        TextFeatures? texts = null;
        if (settings.Images.Length > 0)
        {
            images = retriever.EncodeImages(settings.Images);
            tensors["image_embeds"] = images.Embeds;
        }
        if (settings.Texts.Length > 0)
        {
            texts = retriever.EncodeTexts(settings.Texts);
            tensors["text_embeds"] = texts.Embeds;
        }
        if (settings.Multimodal) tensors["multimodal_embeds"] = retriever.MultimodalEmbeds(images!, texts!);

        if (settings.Out is { } path && path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
        {
            SafetensorsWriter.Save(path, tensors, new Dictionary<string, string> { ["format"] = "pt" });
            Console.Error.WriteLine($"wrote {string.Join(", ", tensors.Select(kv => $"{kv.Key} [{string.Join(", ", kv.Value.shape)}]"))} to {path}");
        }
        else
        {
            var json = JsonSerializer.Serialize(tensors.ToDictionary(kv => kv.Key, kv => ToNested(kv.Value)), new JsonSerializerOptions { WriteIndented = false });
            if (settings.Out is { } jsonPath) File.WriteAllText(jsonPath, json);
            else Blip2Cli.Out(json);
        }
        images?.Dispose();
        texts?.Dispose();
        return 0;
    }

    private static object ToNested(Tensor t) => t.dim() == 1
        ? t.contiguous().data<float>().ToArray()
        : Enumerable.Range(0, (int)t.shape[0]).Select(i => ToNested(t[i])).ToArray();
}
