using System.ComponentModel;
using Blip2Sharp.Generation;
using Blip2Sharp.Tasks;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Blip2Sharp.Cli.Commands;

public sealed class ChatCommand : AsyncCommand<ChatCommand.Settings>
{
    public sealed class Settings : GenerationSettings
    {
        [CommandArgument(0, "<IMAGE>")]
        [Description("The image to talk about.")]
        public string Image { get; init; } = "";

        /// <summary>Streaming needs one sequence: greedy by default, nucleus sampling with --sample --top-p 0.9.</summary>
        public override GenerationOptions Defaults => new() { MaxNewTokens = 30 };

        public override ValidationResult Validate() =>
            NumBeams is > 1 ? ValidationResult.Error("chat streams one answer: use greedy decoding or --sample, not --num-beams.") : base.Validate();
    }

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        DemoModel.NoteIfDefault(settings.Model);
        using var pipeline = Blip2Pipeline.FromPretrained(settings.Model, quantizeInt8: settings.Quantize == "int8");
        foreach (var w in pipeline.Warnings) Blip2Cli.Warn(w);
        using var chat = new ChatSession(pipeline, settings.Image);
        var options = settings.ToOptions();
        Console.Error.WriteLine("Ask about the image; an empty line or Ctrl-D ends the chat.");
        while (!cancellationToken.IsCancellationRequested)
        {
            Console.Error.Write("you> ");
            string? question = Console.ReadLine();
            if (string.IsNullOrWhiteSpace(question)) break;
            Console.Error.Write("blip2> ");
            await foreach (var piece in chat.AskAsync(question, options, cancellationToken)) Console.Out.Write(piece);
            Console.Out.WriteLine();
        }
        return 0;
    }
}
