using System.Text.Json;
using Blip2Sharp.Tasks;
using Spectre.Console;

namespace Blip2Sharp.Cli.Commands;

/// <summary>Prints caption / answer results as JSON or as readable lines.</summary>
public static class ResultPrinter
{
    public static void Print(IReadOnlyList<ImageTextResult> results, IReadOnlyList<(string Image, string Error)> failures, bool json)
    {
        if (json)
        {
            var items = results.Select(r => (object)new Dictionary<string, object?>
            {
                ["image"] = r.Image,
                ["text"] = r.Text,
                ["sequences"] = r.Sequences.Select(s => new Dictionary<string, object?>
                {
                    ["text"] = s.Text,
                    ["generated_ids"] = s.GeneratedIds,
                    ["score"] = s.Score,
                }).ToList(),
                ["timings_ms"] = r.TimingsMs.ToDictionary(kv => kv.Key, kv => Math.Round(kv.Value, 2)),
            }).Concat(failures.Select(f => (object)new Dictionary<string, object?> { ["image"] = f.Image, ["error"] = f.Error }));
            Blip2Cli.Out(JsonSerializer.Serialize(new { results = items }, new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
            return;
        }
        foreach (var r in results)
        {
            if (results.Count + failures.Count > 1) Blip2Cli.Out($"{r.Image}: {r.Text}");
            else Blip2Cli.Out(r.Text);
            foreach (var s in r.Sequences.Skip(1)) Blip2Cli.Out($"    {s.Text}");
        }
    }

    /// <summary>Progress on standard error (so --json output stays clean), only for more than one image.</summary>
    public static void WithProgress(int total, string what, Action<Action> body)
    {
        if (total <= 1 || Console.IsErrorRedirected)
        {
            body(() => { });
            return;
        }
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        console.Progress().Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(what, maxValue: total);
                body(() => task.Increment(1));
            });
    }
}
