using Spectre.Console;
using Spectre.Console.Cli;
using Spectre.Console.Cli.Help;
using Spectre.Console.Rendering;

namespace Blip2Sharp.Cli;

/// <summary>Spectre's help with the conventions every command shares at the end: exit codes, `--`, plain output.</summary>
internal sealed class Blip2Help(ICommandAppSettings settings) : HelpProvider(settings)
{
    private static readonly string[] Footer =
    [
        "",
        "EXIT CODES:",
        "    0      done",
        "    1      an error in the input (a file, an image, a checkpoint),",
        "           said in one line on standard error",
        "    2      a wrong command line",
        "    3      an unexpected failure (a bug: please report it)",
        "    130    interrupted (Ctrl-C)",
        "",
        "`--` ends the options: blip2 tokenize -- \"-5 degrees\".",
        "Results go to standard output (text, or JSON with --json); progress, notes",
        "and errors go to standard error. NO_COLOR, or output that is not a terminal,",
        "gives plain text.",
    ];

    public override IEnumerable<IRenderable> GetFooter(ICommandModel model, ICommandInfo? command) =>
        [new Text(string.Join(Environment.NewLine, Footer) + Environment.NewLine)];
}
