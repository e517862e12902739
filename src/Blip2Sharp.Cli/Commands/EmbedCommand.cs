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
        [Description("A retrieval checkpoint folder (Blip2ForImageTextRetrieval); a generation checkpoint gives image query outputs only, without loading its LLM. " + DemoModel.HelpNote)]
        public string Model { get; init; } = DemoModel.Retrieval;

        [CommandOption("-i|--image <PATH>")]
        [Description("An image to embed (normalised image_embeds, Q × D): a file, a folder or a glob; repeat for several. The output lists the images in row order.")]
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
            // --multimodal's count is checked once folders and globs are expanded.
            Images.Length + Texts.Length == 0 ? ValidationResult.Error("give at least one --image or --text.") : ValidationResult.Success();
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        DemoModel.NoteIfDefault(settings.Model);
        string[] imagePaths = settings.Images.Length > 0 ? [.. ImageInputs.Expand(settings.Images)] : [];
        ImageInputs.RequireReadable(imagePaths);
        if (settings.Multimodal && imagePaths.Length != settings.Texts.Length)
            throw new ArgumentException($"--multimodal pairs image i with text i: give as many texts as images ({imagePaths.Length} images, {settings.Texts.Length} texts).");
        var config = Configuration.Blip2Config.Load(settings.Model, new Configuration.ConfigWarnings());
        if (!config.QFormerConfig.UseQFormerTextInput)
            return QueryFeaturesOnly(settings, imagePaths, config);
        using var retriever = Blip2Retriever.FromPretrained(settings.Model);
        foreach (var w in retriever.Warnings) Blip2Cli.Warn(w);
        var tensors = new Dictionary<string, Tensor>();
        ImageFeatures? images = null;
        TextFeatures? texts = null;
        if (imagePaths.Length > 0)
        {
            images = retriever.EncodeImages(imagePaths);
            tensors["image_embeds"] = images.Embeds;
        }
        if (settings.Texts.Length > 0)
        {
            texts = retriever.EncodeTexts(settings.Texts);
            tensors["text_embeds"] = texts.Embeds;
        }
        if (settings.Multimodal) tensors["multimodal_embeds"] = retriever.MultimodalEmbeds(images!, texts!);

        Write(settings, imagePaths, tensors);
        images?.Dispose();
        texts?.Dispose();
        return 0;
    }

    /// <summary>A generation checkpoint: vision + Q-Former only (its LLM is not loaded), image query outputs [Q, E].</summary>
    private static int QueryFeaturesOnly(Settings settings, string[] imagePaths, Configuration.Blip2Config config)
    {
        if (settings.Texts.Length > 0 || settings.Multimodal)
            throw new ArgumentException($"{settings.Model} has no Q-Former text path or projections (a generation checkpoint): it gives image features only; drop --text / --multimodal, or use a retrieval checkpoint.");
        using var model = Modeling.Blip2ImageFeatureModel.FromPretrained(settings.Model);
        var processor = Processing.BlipImageProcessor.ForCheckpoint(settings.Model, config, new Configuration.ConfigWarnings());
        using var pixels = processor.PreprocessFiles(imagePaths);
        var tensors = new Dictionary<string, Tensor> { ["query_outputs"] = model.QueryOutputs(pixels) };
        Write(settings, imagePaths, tensors);
        return 0;
    }

    /// <summary>The tensors to safetensors (with the image paths in the metadata) or JSON (with an "images" list), in row order.</summary>
    private static void Write(Settings settings, string[] imagePaths, Dictionary<string, Tensor> tensors)
    {
        if (settings.Out is { } path && path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
        {
            var metadata = new Dictionary<string, string> { ["format"] = "pt" };
            if (imagePaths.Length > 0) metadata["images"] = JsonSerializer.Serialize(imagePaths);
            SafetensorsWriter.Save(path, tensors, metadata);
            Console.Error.WriteLine($"wrote {string.Join(", ", tensors.Select(kv => $"{kv.Key} [{string.Join(", ", kv.Value.shape)}]"))} to {path}");
            return;
        }
        var output = new Dictionary<string, object>();
        if (imagePaths.Length > 0) output["images"] = imagePaths;
        foreach (var (name, t) in tensors) output[name] = ToNested(t);
        var json = JsonSerializer.Serialize(output);
        if (settings.Out is { } jsonPath) File.WriteAllText(jsonPath, json);
        else Blip2Cli.Out(json);
    }

    private static object ToNested(Tensor t) => t.dim() == 1
        ? t.contiguous().data<float>().ToArray()
        : Enumerable.Range(0, (int)t.shape[0]).Select(i => ToNested(t[i])).ToArray();
}
