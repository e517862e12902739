using System.ComponentModel;
using Blip2Sharp.Generation;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Blip2Sharp.Cli.Commands;

/// <summary>Options shared by caption, ask and chat, named after transformers' generate() arguments.</summary>
public class GenerationSettings : CommandSettings
{
    [CommandOption("-m|--model <DIR>")]
    [Description("A BLIP-2 checkpoint folder (Blip2ForConditionalGeneration, OPT or Flan-T5). " + DemoModel.HelpNote)]
    public string Model { get; init; } = DemoModel.Generation;

    [CommandOption("--max-new-tokens <N>")]
    [Description("Most new tokens to generate (default 20; ask: 10, chat: 30).")]
    public int? MaxNewTokens { get; init; }

    [CommandOption("--min-new-tokens <N>")]
    [Description("Fewest new tokens before a stop token may end the text (default 0; ask: 1).")]
    public int? MinNewTokens { get; init; }

    [CommandOption("--num-beams <N>")]
    [Description("Beam search with N beams (default 1 = greedy; ask: 5).")]
    public int? NumBeams { get; init; }

    [CommandOption("--length-penalty <X>")]
    [Description("Beam scores are divided by length^X, negative favours short texts (default 1; ask: -1).")]
    public double? LengthPenalty { get; init; }

    [CommandOption("--early-stopping [WHEN]")]
    [Description("When beam search ends: true (alone: as soon as num_beams hypotheses are finished), false (default: " +
        "when no running beam can beat them at its current length) or never (when none can at the longest length).")]
    public FlagValue<string>? EarlyStopping { get; init; }

    /// <summary>--early-stopping's value: absent, alone (true), true, false or never.</summary>
    private EarlyStopping? EarlyStoppingValue => EarlyStopping is not { IsSet: true } flag ? null
        : (flag.Value ?? "true").ToLowerInvariant() switch
        {
            "true" => Generation.EarlyStopping.WhenFull,
            "false" => Generation.EarlyStopping.Heuristic,
            "never" => Generation.EarlyStopping.Never,
            var other => throw new ArgumentException($"--early-stopping takes true, false or never (got '{other}')."),
        };

    [CommandOption("--repetition-penalty <X>")]
    [Description("Penalise tokens already generated (default 1 = off).")]
    public double? RepetitionPenalty { get; init; }

    [CommandOption("--no-repeat-ngram-size <N>")]
    [Description("Never repeat an n-gram of this size (default 0 = off).")]
    public int? NoRepeatNgramSize { get; init; }

    [CommandOption("--num-return-sequences <N>")]
    [Description("How many sequences to return per image, at most num_beams or any number with --sample (default 1).")]
    public int? NumReturnSequences { get; init; }

    [CommandOption("--eos-token-id <ID>")]
    [Description("Stop token id(s), replacing the checkpoint's (official OPT configs stop on \"\\n\"). Repeat for several.")]
    public int[]? EosTokenId { get; init; }

    [CommandOption("--sample")]
    [Description("Sample instead of taking the most likely token.")]
    public bool Sample { get; init; }

    [CommandOption("--temperature <X>")]
    [Description("Sampling temperature, > 0 (default 1).")]
    public double? Temperature { get; init; }

    [CommandOption("--top-k <N>")]
    [Description("Sample among the K most likely tokens (0 = off; default 50).")]
    public int? TopK { get; init; }

    [CommandOption("--top-p <X>")]
    [Description("Nucleus sampling: the smallest set of tokens whose probability reaches X, 0 < X <= 1 (default 1 = off).")]
    public double? TopP { get; init; }

    [CommandOption("--seed <N>")]
    [Description("Seed that makes sampling reproducible (default: a new one each run).")]
    public ulong? Seed { get; init; }

    [CommandOption("--quantize <MODE>")]
    [Description("int8: weight-only int8 for the OPT language model's linear layers (faster CPU decoding, small accuracy cost).")]
    public string? Quantize { get; init; }

    [CommandOption("--json")]
    [Description("Print JSON instead of text.")]
    public bool Json { get; init; }

    public virtual GenerationOptions Defaults => new();

    public GenerationOptions ToOptions()
    {
        var d = Defaults;
        var o = d with
        {
            MaxNewTokens = MaxNewTokens ?? d.MaxNewTokens,
            MinNewTokens = MinNewTokens ?? d.MinNewTokens,
            NumBeams = NumBeams ?? d.NumBeams,
            LengthPenalty = LengthPenalty ?? d.LengthPenalty,
            EarlyStopping = EarlyStoppingValue ?? d.EarlyStopping,
            RepetitionPenalty = RepetitionPenalty ?? d.RepetitionPenalty,
            NoRepeatNgramSize = NoRepeatNgramSize ?? d.NoRepeatNgramSize,
            NumReturnSequences = NumReturnSequences ?? d.NumReturnSequences,
            EosTokenId = EosTokenId is { Length: > 0 } e ? e : d.EosTokenId,
            DoSample = Sample || d.DoSample,
            Temperature = Temperature ?? d.Temperature,
            TopK = TopK ?? d.TopK,
            TopP = TopP ?? d.TopP,
            Seed = Seed ?? d.Seed,
        };
        if (Sample && NumBeams is null) o = o with { NumBeams = 1 };
        return o;
    }

    public override ValidationResult Validate()
    {
        if (Quantize is not null && Quantize != "int8") return ValidationResult.Error($"--quantize takes int8 (got '{Quantize}').");
        try
        {
            ToOptions().Validate();
        }
        catch (ArgumentException e)
        {
            return ValidationResult.Error(e.Message);
        }
        return ValidationResult.Success();
    }
}
