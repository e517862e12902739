using System.ComponentModel;
using System.Text.Json;
using Blip2Sharp.Tasks;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Blip2Sharp.Cli.Commands;

public sealed class MatchCommand : Command<MatchCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("-m|--model <DIR>")]
        [Description("A retrieval checkpoint folder (Blip2ForImageTextRetrieval, e.g. blip2-itm-vit-g). " + DemoModel.HelpNote)]
        public string Model { get; init; } = DemoModel.Retrieval;

        [CommandOption("-i|--image <PATH>")]
        [Description("An image; repeat for several.")]
        public string[] Images { get; init; } = [];

        [CommandOption("-t|--text <TEXT>")]
        [Description("A text; repeat for several.")]
        public string[] Texts { get; init; } = [];

        [CommandOption("--json")]
        [Description("Print {\"itm\": [[...]], \"itc\": [[...]]}, images × texts.")]
        public bool Json { get; init; }

        public override ValidationResult Validate() =>
            Images.Length == 0 ? ValidationResult.Error("give at least one --image.")
            : Texts.Length == 0 ? ValidationResult.Error("give at least one --text.")
            : ValidationResult.Success();
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        DemoModel.NoteIfDefault(settings.Model);
        var paths = ImageInputs.Expand(settings.Images);
        ImageInputs.RequireReadable(paths);
        using var retriever = Blip2Retriever.FromPretrained(settings.Model);
        foreach (var w in retriever.Warnings) Blip2Cli.Warn(w);
        using var images = retriever.EncodeImages(paths);
        using var texts = retriever.EncodeTexts(settings.Texts);
        using var itm = retriever.ItmProbabilities(images, texts);
        using var itc = Blip2Retriever.ItcMatrix(images.Embeds, texts.Embeds);
        var itmRows = Rows(itm);
        var itcRows = Rows(itc);
        if (settings.Json)
        {
            Blip2Cli.Out(JsonSerializer.Serialize(new { itm = itmRows, itc = itcRows, images = paths, texts = settings.Texts },
                new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
            return 0;
        }
        var table = new Table().Border(TableBorder.Rounded).AddColumn("image").AddColumn("text").AddColumn(new TableColumn("ITM match").RightAligned()).AddColumn(new TableColumn("ITC similarity").RightAligned());
        for (int i = 0; i < paths.Count; i++)
            for (int j = 0; j < settings.Texts.Length; j++)
                table.AddRow(new Text(paths[i]), new Text(settings.Texts[j]), new Text($"{itmRows[i][j]:P1}"), new Text($"{itcRows[i][j]:F4}"));
        Blip2Cli.Human.Write(table);
        return 0;
    }

    internal static float[][] Rows(TorchSharp.torch.Tensor t) =>
        [.. Enumerable.Range(0, (int)t.shape[0]).Select(i => t[i].contiguous().data<float>().ToArray())];
}
