using System.ComponentModel;
using Blip2Sharp.Training;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Blip2Sharp.Cli.Commands;

public sealed class TrainCommand : Command<TrainCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandArgument(0, "<STAGE>")]
        [Description("stage1 (ITC + ITM + ITG on a retrieval checkpoint) or stage2 (soft prompt of a frozen OPT / Flan-T5).")]
        public string Stage { get; init; } = "";

        [CommandOption("--init <DIR>")]
        [Description("Checkpoint folder with the frozen parts and the starting Q-Former (stage1: Blip2ForImageTextRetrieval; stage2: Blip2ForConditionalGeneration).")]
        public string Init { get; init; } = "";

        [CommandOption("--qformer <DIR>")]
        [Description("stage2: take the Q-Former and queries from this stage-1 output.")]
        public string? QFormer { get; init; }

        [CommandOption("--qformer-from-bert <DIR>")]
        [Description("stage1: initialise the Q-Former from a BERT checkpoint folder (bert-base-uncased layout), as the paper does.")]
        public string? Bert { get; init; }

        [CommandOption("--data <FILE>")]
        [Description("Training pairs: JSONL {\"image\", \"caption\"} or CSV with image,caption columns; paths relative to the file.")]
        public string Data { get; init; } = "";

        [CommandOption("--val-data <FILE>")]
        [Description("Held-out pairs, evaluated every eval_every steps (stage1: retrieval R@1; stage2: loss).")]
        public string? ValData { get; init; }

        [CommandOption("--out <DIR>")]
        [Description("Output folder: checkpoint-N folders (Hugging Face layout), metrics.csv, metrics.png.")]
        public string Out { get; init; } = "";

        [CommandOption("--config <FILE>")]
        [Description("JSON with max_steps, batch_size, lr, min_lr, warmup_steps, weight_decay, grad_accumulation, clip_grad_norm, log_every, save_every, eval_every, seed, max_text_tokens, prompt_alignment.")]
        public string? ConfigFile { get; init; }

        [CommandOption("--max-steps <N>")] [Description("Optimizer steps.")] public int? MaxSteps { get; init; }
        [CommandOption("--batch-size <B>")] [Description("Pairs per step (before accumulation).")] public int? BatchSize { get; init; }
        [CommandOption("--lr <X>")] [Description("Peak learning rate.")] public double? Lr { get; init; }
        [CommandOption("--seed <S>")] [Description("Seed for data order, augmentation, negatives and dropout.")] public long? Seed { get; init; }
        [CommandOption("--prompt-alignment <W>")]
        [Description("stage2, OPT: weight of the prompt alignment (not in the paper; 0, the default, is the paper's stage 2): pulls the soft prompt toward the word embeddings of the caption, so that the frozen LM reads it as it reads text.")]
        public double? PromptAlignment { get; init; }
        [CommandOption("--prompt <TEXT>")]
        [Description("stage2: LAVIS's prompt: OPT learns \"TEXT caption\" with TEXT's tokens masked, Flan-T5 reads TEXT " +
            "after the queries. Default: none, as LAVIS's pre-training (its COCO caption fine-tuning: \"a photo of\").")]
        public string? Prompt { get; init; }
        [CommandOption("--resume")] [Description("Continue from the latest checkpoint in --out.")] public bool Resume { get; init; }

        public override ValidationResult Validate() =>
            Stage is not ("stage1" or "stage2") ? ValidationResult.Error("STAGE must be stage1 or stage2.")
            : string.IsNullOrWhiteSpace(Init) ? ValidationResult.Error("--init DIR is required.")
            : string.IsNullOrWhiteSpace(Data) ? ValidationResult.Error("--data FILE is required.")
            : string.IsNullOrWhiteSpace(Out) ? ValidationResult.Error("--out DIR is required.")
            : ValidationResult.Success();
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellationToken)
    {
        var config = s.ConfigFile is null ? new TrainConfig() : TrainConfig.Load(s.ConfigFile);
        config = config with
        {
            MaxSteps = s.MaxSteps ?? config.MaxSteps,
            BatchSize = s.BatchSize ?? config.BatchSize,
            Lr = s.Lr ?? config.Lr,
            Seed = s.Seed ?? config.Seed,
            PromptAlignment = s.PromptAlignment ?? config.PromptAlignment,
            Prompt = s.Prompt ?? config.Prompt,
        };
        var trainer = new Trainer(s.Stage == "stage1" ? TrainStage.Stage1 : TrainStage.Stage2, s.Init, ImageTextData.Load(s.Data), s.Out, config)
        {
            ValData = s.ValData is null ? null : ImageTextData.Load(s.ValData),
            QFormerFrom = s.QFormer,
            BertFrom = s.Bert,
            DrawMetrics = Blip2Sharp.Plots.MetricsChart.FromCsv,
            Log = m => Console.Error.WriteLine(m),
        };
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; cts.Cancel(); };
        Console.CancelKeyPress += onCancel;
        try
        {
            string last;
            if (Console.IsErrorRedirected)
            {
                last = trainer.Run(s.Resume, p => Console.Error.WriteLine(
                    $"step {p.Step}/{p.MaxSteps} {string.Join(" ", p.Losses.Select(kv => $"{kv.Key}={kv.Value:F4}"))} lr={p.Lr:E2} {p.PairsPerSecond:F1} pairs/s eta {p.Eta:hh\\:mm\\:ss}"), cts.Token);
            }
            else
            {
                last = "";
                AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) }).Progress()
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
                    .Start(ctx =>
                    {
                        var task = ctx.AddTask(s.Stage, maxValue: config.MaxSteps);
                        last = trainer.Run(s.Resume, p =>
                        {
                            task.Value = p.Step;
                            task.Description = $"{s.Stage} {string.Join(" ", p.Losses.Select(kv => $"{ShortName(kv.Key)}={kv.Value:F3}"))} {p.PairsPerSecond:F1}/s";
                        }, cts.Token);
                    });
            }
            Blip2Cli.Out($"trained to {last}; metrics in {Path.Combine(s.Out, "metrics.csv")}");
            return 0;
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine($"interrupted; the latest checkpoint in {s.Out} is intact: run again with --resume.");
            return 130;
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }

    /// <summary>A loss's name in the progress bar: "loss_itc" → "itc"; stage 2's "loss" stays "loss".</summary>
    public static string ShortName(string loss) => loss.StartsWith("loss_", StringComparison.Ordinal) ? loss[5..] : loss;
}
