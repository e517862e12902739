using System.ComponentModel;
using Blip2Sharp.Demo;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Blip2Sharp.Cli.Commands;

/// <summary>`blip2 demo`: the whole model at work on scenes it has never seen: captions, zero-shot answers, search.</summary>
public sealed class DemoRunCommand : Command<DemoRunCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("-m|--model <DIR>")]
        [Description("A demo model folder (generation/ and retrieval/, as `blip2 demo train` writes under OUT/model). " + DemoModel.HelpNote)]
        public string Model { get; init; } = DemoModel.Folder;

        [CommandOption("-n|--scenes <N>")]
        [Description("How many new scenes to render (default 8).")]
        [DefaultValue(8)]
        public int Scenes { get; init; } = 8;

        [CommandOption("--seed <S>")]
        [Description("Seed of the new scenes (default: a new one each run).")]
        public int? Seed { get; init; }

        [CommandOption("-o|--out <DIR>")]
        [Description("Where the scenes and results go: scenes/*.png, results.json, results.md, grid.png (default demo-output).")]
        [DefaultValue("demo-output")]
        public string Out { get; init; } = "demo-output";

        [CommandOption("--json")]
        [Description("Print the results as JSON (the content of results.json).")]
        public bool Json { get; init; }

        public override ValidationResult Validate() =>
            Scenes is < 1 or > 100 ? ValidationResult.Error("--scenes must be between 1 and 100.") : ValidationResult.Success();
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellationToken)
    {
        int seed = s.Seed ?? Random.Shared.Next(1, 1_000_000);
        var results = DemoShowcase.Run(s.Model, s.Out, s.Scenes, seed, s.Json ? null : m => Console.Error.WriteLine($"blip2: {m}…"));
        if (s.Json)
        {
            Blip2Cli.Out(File.ReadAllText(Path.Combine(s.Out, "results.json")));
            return 0;
        }
        string Mark(bool ok) => ok ? "[green]✓[/]" : "[red]✗[/]";
        var table = new Table().Border(TableBorder.Rounded).Title($"{s.Scenes} new scenes (seed {seed})")
            .AddColumn("scene").AddColumn("generated caption").AddColumn("zero-shot answers").AddColumn("search by its caption");
        foreach (var r in results)
        {
            table.AddRow(
                new Markup(Markup.Escape(Path.GetFileName(r.Image))),
                new Markup($"{Markup.Escape(r.Caption)} {Mark(r.CaptionCorrect)}"),
                new Markup(string.Join("\n", r.Answers.Select(a => $"{Markup.Escape(a.Question)} → {Markup.Escape(a.Answer)} {Mark(a.Correct)}"))),
                new Markup($"{Markup.Escape(Path.GetFileName(r.Search.TopImage))} ({r.Search.Probability:F2}) {Mark(r.Search.Correct)}"));
        }
        Blip2Cli.Human.Write(table);
        int answers = results.Sum(r => r.Answers.Count);
        Blip2Cli.Out($"captions right: {results.Count(r => r.CaptionCorrect)}/{results.Count}; answers right: {results.Sum(r => r.Answers.Count(a => a.Correct))}/{answers}; " +
            $"search top-1 right: {results.Count(r => r.Search.Correct)}/{results.Count}");
        Blip2Cli.Out($"written: {Path.Combine(s.Out, "results.md")}, {Path.Combine(s.Out, "grid.png")}, {Path.Combine(s.Out, "scenes")}/");
        return 0;
    }
}
