using System.ComponentModel;
using Blip2Sharp.Processing;
using Blip2Sharp.Tasks;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Blip2Sharp.Cli.Commands;

public sealed class IndexCommand : Command<IndexCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandArgument(0, "<FOLDER>")]
        [Description("Folder of images to index (searched recursively).")]
        public string Folder { get; init; } = "";

        [CommandOption("-m|--model <DIR>")]
        [Description("A retrieval checkpoint folder (Blip2ForImageTextRetrieval). " + DemoModel.HelpNote)]
        public string Model { get; init; } = DemoModel.Retrieval;

        [CommandOption("--db <FILE>")]
        [Description("The index database (SQLite). Default: FOLDER/.blip2-index.db")]
        public string? Db { get; init; }

        [CommandOption("--batch-size <N>")]
        [Description("Images embedded and committed together.")]
        [DefaultValue(16)]
        public int BatchSize { get; init; } = 16;

        [CommandOption("--json")]
        [Description("Print the outcome as JSON: db, added, updated, unchanged, removed, failed ([[{path, error}]]), " +
            "interrupted.")]
        public bool Json { get; init; }

        public override ValidationResult Validate() =>
            BatchSize < 1 ? ValidationResult.Error("--batch-size must be at least 1.")
            : ValidationResult.Success();
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        DemoModel.NoteIfDefault(settings.Model);
        // Checked before anything is created: a mistyped folder must not become a new folder with an empty index.
        if (!Directory.Exists(settings.Folder))
            throw new DirectoryNotFoundException($"{settings.Folder}: folder not found; give the folder of images to index.");
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            e.Cancel = true; // finish the current batch, keep everything committed
            cts.Cancel();
            Console.Error.WriteLine("stopping after the current batch; run the same command again to finish.");
        };
        Console.CancelKeyPress += onCancel;
        try
        {
            using var retriever = Blip2Retriever.FromPretrained(settings.Model, decodeOptions: new ImageDecodeOptions { OnWarning = Blip2Cli.Warn });
            foreach (var w in retriever.Warnings) Blip2Cli.Warn(w);
            string db = settings.Db ?? Path.Combine(settings.Folder, ".blip2-index.db");
            using var store = new SqliteVectorStore(db);
            IndexReport? report = null;
            void Fail(string path, string error) => ImageInputs.ReportUnreadable($"{path}: {error}");
            if (Console.IsErrorRedirected)
            {
                report = ImageIndex.Build(retriever, store, settings.Folder, settings.BatchSize,
                    (done, total) => Console.Error.WriteLine($"indexed {done}/{total}"), Fail, cts.Token);
            }
            else
            {
                AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) }).Progress()
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
                    .Start(ctx =>
                    {
                        var task = ctx.AddTask("indexing");
                        report = ImageIndex.Build(retriever, store, settings.Folder, settings.BatchSize,
                            (done, total) => { task.MaxValue = Math.Max(1, total); task.Value = done; }, Fail, cts.Token);
                    });
            }
            var r = report!;
            if (settings.Json)
            {
                Blip2Cli.Out(new System.Text.Json.Nodes.JsonObject
                {
                    ["db"] = db, ["added"] = r.Added, ["updated"] = r.Updated, ["unchanged"] = r.Unchanged,
                    ["removed"] = r.Removed, ["interrupted"] = r.Cancelled,
                    ["failed"] = new System.Text.Json.Nodes.JsonArray([.. r.Failed.Select(f =>
                        (System.Text.Json.Nodes.JsonNode)new System.Text.Json.Nodes.JsonObject
                        {
                            ["path"] = f.Path, ["error"] = f.Error,
                        })]),
                }.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
                return r.Cancelled ? 130 : r.Failed.Count > 0 ? Blip2Cli.InputError : 0;
            }
            Blip2Cli.Out($"{db}: {r.Added} added, {r.Updated} updated, {r.Unchanged} unchanged, {r.Removed} removed, {r.Failed.Count} unreadable{(r.Cancelled ? " (interrupted: run again to finish)" : "")}");
            return r.Cancelled ? 130 : r.Failed.Count > 0 ? Blip2Cli.InputError : 0;
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }
}
