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

        // --json (from GenerationSettings): one JSON line per answered turn on standard output, nothing streamed.

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
        if (!settings.Json) Console.Error.WriteLine("Ask about the image; an empty line or Ctrl-D ends the chat.");
        while (!cancellationToken.IsCancellationRequested)
        {
            if (!settings.Json) Console.Error.Write("you> ");
            string? question = Console.ReadLine();
            if (string.IsNullOrWhiteSpace(question)) break;
            int leftOut = chat.TurnsLeftOut;
            bool started = false;
            try
            {
                if (settings.Json)
                {
                    var answer = new System.Text.StringBuilder();
                    await foreach (var piece in chat.AskAsync(question, options, cancellationToken)) answer.Append(piece);
                    Blip2Cli.Out(new System.Text.Json.Nodes.JsonObject
                    {
                        ["question"] = question, ["answer"] = chat.Turns[^1].Answer, ["turns_left_out"] = chat.TurnsLeftOut,
                    }.ToJsonString());
                    continue;
                }
                await foreach (var piece in chat.AskAsync(question, options, cancellationToken))
                {
                    if (!started)
                    {
                        if (chat.TurnsLeftOut > leftOut)
                            Console.Error.WriteLine($"blip2: the {chat.TurnsLeftOut} oldest turn(s) no longer fit the " +
                                "model's context and are left out of it.");
                        Console.Error.Write("blip2> ");
                        started = true;
                    }
                    Console.Out.Write(piece);
                }
            }
            catch (ArgumentException e)
            {
                // One turn refused (too long for the context); the chat goes on.
                Console.Error.WriteLine($"blip2: error: {e.Message} Ask a shorter question.");
                continue;
            }
            if (!started) Console.Error.Write("blip2> ");
            Console.Out.WriteLine();
        }
        return 0;
    }
}
