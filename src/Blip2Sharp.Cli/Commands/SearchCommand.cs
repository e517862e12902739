using System.ComponentModel;
using System.Text.Json;
using Blip2Sharp.Tasks;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Blip2Sharp.Cli.Commands;

public sealed class SearchCommand : Command<SearchCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandArgument(0, "[TEXT]")]
        [Description("What to look for.")]
        public string? Text { get; init; }

        [CommandOption("--image <PATH>")]
        [Description("Search by an image instead of a text.")]
        public string? Image { get; init; }

        [CommandOption("--db <FILE>")]
        [Description("The index database made by `blip2 index`.")]
        public string Db { get; init; } = "";

        [CommandOption("-m|--model <DIR>")]
        [Description("The retrieval checkpoint the index was built with. " + DemoModel.HelpNote)]
        public string Model { get; init; } = DemoModel.Retrieval;

        [CommandOption("--top <K>")]
        [Description("How many results.")]
        [DefaultValue(10)]
        public int Top { get; init; } = 10;

        [CommandOption("--rerank <N>")]
        [Description("Text queries: re-rank the best N by ITM, score = ITM match logit + ITC (0 = ITC only). Default " +
            "128, as the paper. Image queries rank by similarity alone (ITM scores an image against a text).")]
        public int? Rerank { get; init; }

        [CommandOption("--json")]
        [Description("Print JSON.")]
        public bool Json { get; init; }

        public override ValidationResult Validate() =>
            string.IsNullOrWhiteSpace(Db) ? ValidationResult.Error("--db FILE is required.")
            : (Text is null) == (Image is null) ? ValidationResult.Error("give either a TEXT or --image PATH.")
            : Text is not null && string.IsNullOrWhiteSpace(Text) ? ValidationResult.Error("the search text is empty.")
            : Top < 1 ? ValidationResult.Error("--top must be at least 1.")
            : Rerank < 0 ? ValidationResult.Error("--rerank must be 0 or more.")
            : Image is not null && Rerank > 0 ? ValidationResult.Error(
                "--rerank applies to text queries: ITM scores an image against a text, so an image query ranks by " +
                "similarity alone; leave --rerank out (or give 0).")
            : ValidationResult.Success();
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        DemoModel.NoteIfDefault(settings.Model);
        if (!File.Exists(settings.Db)) throw new FileNotFoundException($"{settings.Db}: no index there; build one with `blip2 index FOLDER --model DIR --db {settings.Db}`.");
        using var retriever = Blip2Retriever.FromPretrained(settings.Model);
        using var store = new SqliteVectorStore(settings.Db);
        if (store.Fingerprint is { } f && !f.StartsWith(retriever.Fingerprint + ";", StringComparison.Ordinal))
            throw new Blip2Exception($"{settings.Db} was built with another model or preprocessing; search it with the model that built it.");
        var hits = settings.Text is not null
            ? ImageIndex.SearchText(retriever, store, settings.Text, settings.Top, settings.Rerank ?? 128)
            : ImageIndex.SearchImage(retriever, store, settings.Image!, settings.Top);
        string root = store.Fingerprint is null ? "" : ImageIndex.RootOf(store);
        if (settings.Json)
        {
            Blip2Cli.Out(JsonSerializer.Serialize(new
            {
                results = hits.Select(h => new { path = Path.Combine(root, h.Path), score = h.Score, itc = h.Itc, itm_logit = h.ItmLogit }),
            }, new JsonSerializerOptions { WriteIndented = true }));
            return 0;
        }
        // The score is the ranking key: the ITC cosine, or after re-ranking ITM match logit + ITC (not a similarity).
        bool reranked = hits.Any(h => h.ItmLogit is not null);
        string scoreName = settings.Image is not null ? "similarity" : reranked ? "score (ITM + ITC)" : "ITC";
        var table = new Table().Border(TableBorder.Rounded).AddColumn("#").AddColumn("image")
            .AddColumn(new TableColumn(scoreName).RightAligned())
            .AddColumn(new TableColumn("ITC").RightAligned()).AddColumn(new TableColumn("ITM logit").RightAligned());
        for (int i = 0; i < hits.Count; i++)
            table.AddRow((i + 1).ToString(), Markup.Escape(Path.Combine(root, hits[i].Path)), $"{hits[i].Score:F4}", $"{hits[i].Itc:F4}", hits[i].ItmLogit is { } l ? $"{l:F4}" : "-");
        Blip2Cli.Human.Write(table);
        return 0;
    }
}
