using System.ComponentModel;
using Blip2Sharp.Generation;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Blip2Sharp.Cli.Commands;

public sealed class AskCommand : Command<AskCommand.Settings>
{
    public sealed class Settings : GenerationSettings
    {
        [CommandArgument(0, "<IMAGE>")]
        [Description("Image file, folder or glob.")]
        public string Image { get; init; } = "";

        [CommandArgument(1, "<QUESTION>")]
        [Description("The question, put into the paper's prompt: \"Question: {} Answer:\" (OPT) or \"Question: {} Short answer:\" (Flan-T5).")]
        public string Question { get; init; } = "";

        /// <summary>The paper's zero-shot VQA preset: beam 5, max 10 new tokens, min 1, length penalty -1.</summary>
        public override GenerationOptions Defaults => GenerationOptions.Vqa;

        public override ValidationResult Validate() =>
            string.IsNullOrWhiteSpace(Question) ? ValidationResult.Error("the question is empty.") : base.Validate();
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken) =>
        ImageTextRunner.Run(settings, [settings.Image], (pipeline, _) => pipeline.VqaPrompt(settings.Question.Trim()), 1, "answering", cancellationToken);
}
