using System.ComponentModel;
using System.Text.Json;
using Blip2Sharp.Processing.Tokenizers;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Blip2Sharp.Cli.Commands;

public sealed class TokenizeCommand : Command<TokenizeCommand.Settings>
{
    private static readonly JsonSerializerOptions Relaxed = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public sealed class Settings : CommandSettings
    {
        [CommandOption("-m|--model <DIR>")]
        [Description("A folder with tokenizer files (a checkpoint, or tokenizer files alone). " + DemoModel.HelpNote)]
        public string Model { get; init; } = DemoModel.Generation;

        [CommandArgument(0, "<TEXT>")]
        [Description("Texts to tokenize.")]
        public string[] Texts { get; init; } = [];

        [CommandOption("--json")]
        [Description("Print JSON: {\"results\": [[{\"text\", \"ids\", \"tokens\", \"decoded\"}]]}.")]
        public bool Json { get; init; }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var tokenizer = Tokenizer.FromPretrained(settings.Model);
        var results = settings.Texts.Select(t =>
        {
            var e = tokenizer.Encode(t);
            return new { text = t, ids = e.Ids, tokens = e.Tokens, decoded = tokenizer.Decode(e.Ids, skipSpecialTokens: true) };
        }).ToList();
        if (settings.Json)
        {
            Blip2Cli.Out(JsonSerializer.Serialize(new { results }, new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
            return 0;
        }
        foreach (var r in results)
        {
            Blip2Cli.Out(r.text);
            Blip2Cli.Out($"  ids:     [{string.Join(", ", r.ids)}]");
            Blip2Cli.Out($"  tokens:  [{string.Join(", ", r.tokens.Select(x => JsonSerializer.Serialize(x, Relaxed)))}]");
            Blip2Cli.Out($"  decoded: {r.decoded}");
        }
        return 0;
    }
}
