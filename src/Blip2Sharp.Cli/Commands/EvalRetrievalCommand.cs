using System.ComponentModel;
using System.Text.Json;
using Blip2Sharp.Tasks;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Blip2Sharp.Cli.Commands;

public sealed class EvalRetrievalCommand : Command<EvalRetrievalCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("-d|--data <FILE>")]
        [Description("JSONL of {\"image\": path, \"caption\": text or [[texts]]}, paths relative to the file: one line per " +
            "image, or one per caption (lines naming the same image are grouped).")]
        public string Data { get; init; } = "";

        [CommandOption("-m|--model <DIR>")]
        [Description("A retrieval checkpoint folder (Blip2ForImageTextRetrieval). " + DemoModel.HelpNote)]
        public string Model { get; init; } = DemoModel.Retrieval;

        [CommandOption("--k-test <K>")]
        [Description("ITC candidates re-ranked by ITM per query (LAVIS: 128 for COCO / Flickr).")]
        [DefaultValue(128)]
        public int KTest { get; init; } = 128;

        [CommandOption("--json")]
        [Description("Print the recalls as JSON fractions.")]
        public bool Json { get; init; }

        public override ValidationResult Validate() =>
            string.IsNullOrWhiteSpace(Data) ? ValidationResult.Error("--data FILE.jsonl is required.")
            : KTest < 1 ? ValidationResult.Error("--k-test must be at least 1.")
            : ValidationResult.Success();
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        DemoModel.NoteIfDefault(settings.Model);
        var data = RetrievalEvaluation.Load(settings.Data);
        using var retriever = Blip2Retriever.FromPretrained(settings.Model);
        foreach (var w in retriever.Warnings) Blip2Cli.Warn(w);
        RetrievalMetrics? m = null;
        if (Console.IsErrorRedirected) m = RetrievalEvaluation.Evaluate(retriever, data, settings.KTest, ct: cancellationToken);
        else
        {
            AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) }).Progress()
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                .Start(ctx =>
                {
                    var tasks = new Dictionary<string, ProgressTask>();
                    m = RetrievalEvaluation.Evaluate(retriever, data, settings.KTest, progress: (what, done, total) =>
                    {
                        if (!tasks.TryGetValue(what, out var t)) tasks[what] = t = ctx.AddTask(what, maxValue: total);
                        t.Value = done;
                    }, ct: cancellationToken);
                });
        }
        var r = m!;
        if (settings.Json)
        {
            Blip2Cli.Out(JsonSerializer.Serialize(new
            {
                i2t_r1 = r.I2tR1, i2t_r5 = r.I2tR5, i2t_r10 = r.I2tR10, t2i_r1 = r.T2iR1, t2i_r5 = r.T2iR5, t2i_r10 = r.T2iR10, images = r.Images, texts = r.Texts,
            }, new JsonSerializerOptions { WriteIndented = true }));
            return 0;
        }
        var table = new Table().Border(TableBorder.Rounded).AddColumn("").AddColumn("R@1").AddColumn("R@5").AddColumn("R@10");
        table.AddRow("image → text", $"{r.I2tR1:P1}", $"{r.I2tR5:P1}", $"{r.I2tR10:P1}");
        table.AddRow("text → image", $"{r.T2iR1:P1}", $"{r.T2iR5:P1}", $"{r.T2iR10:P1}");
        Blip2Cli.Human.Write(table);
        Blip2Cli.Out($"{r.Images} images, {r.Texts} texts");
        return 0;
    }
}
