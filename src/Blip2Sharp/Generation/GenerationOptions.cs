namespace Blip2Sharp.Generation;

/// <summary>
/// When beam search ends (transformers' early_stopping): <see cref="Heuristic"/> (false, the default) once no running
/// beam can beat the worst finished one judged at the current length; <see cref="WhenFull"/> (true) as soon as
/// num_beams hypotheses are finished; <see cref="Never"/> ("never") once none can beat it at the longest length a
/// beam can still reach (the canonical beam search; with a length penalty of 0 or less, judged as false).
/// </summary>
public enum EarlyStopping { Heuristic, WhenFull, Never }

/// <summary>Decoding settings, named after transformers' generate() arguments; invalid values are refused.</summary>
public sealed record GenerationOptions
{
    public int MaxNewTokens { get; init; } = 20;
    public int MinNewTokens { get; init; }
    public int NumBeams { get; init; } = 1;
    public double LengthPenalty { get; init; } = 1.0;
    public EarlyStopping EarlyStopping { get; init; }
    public int NumReturnSequences { get; init; } = 1;
    public bool DoSample { get; init; }
    public double Temperature { get; init; } = 1.0;
    public int TopK { get; init; } = 50;
    public double TopP { get; init; } = 1.0;
    public double RepetitionPenalty { get; init; } = 1.0;
    public int NoRepeatNgramSize { get; init; }
    /// <summary>Stop ids; null takes the checkpoint's (OPT's official configs stop on "\n").</summary>
    public int[]? EosTokenId { get; init; }
    public ulong? Seed { get; init; }

    /// <summary>The paper's zero-shot VQA preset: beam 5, at most 10 new tokens, at least 1, length penalty −1.</summary>
    public static GenerationOptions Vqa { get; } = new() { NumBeams = 5, MaxNewTokens = 10, MinNewTokens = 1, LengthPenalty = -1 };

    public void Validate()
    {
        void Check(bool ok, string message)
        {
            if (!ok) throw new ArgumentException(message);
        }
        Check(MaxNewTokens >= 1, $"max_new_tokens must be at least 1 (got {MaxNewTokens}).");
        Check(MinNewTokens >= 0 && MinNewTokens <= MaxNewTokens, $"min_new_tokens must be between 0 and max_new_tokens ({MaxNewTokens}); got {MinNewTokens}.");
        Check(NumBeams >= 1, $"num_beams must be at least 1 (got {NumBeams}).");
        Check(NumReturnSequences >= 1, $"num_return_sequences must be at least 1 (got {NumReturnSequences}).");
        Check(DoSample || NumReturnSequences <= NumBeams, $"num_return_sequences ({NumReturnSequences}) cannot exceed num_beams ({NumBeams}) without sampling.");
        Check(!(DoSample && NumBeams > 1), "beam search with sampling is not supported; use either --num-beams or --sample.");
        Check(Temperature > 0 && double.IsFinite(Temperature), $"temperature must be a positive number (got {Temperature}).");
        Check(TopK >= 0, $"top_k must be 0 (off) or positive (got {TopK}).");
        Check(TopP > 0 && TopP <= 1, $"top_p must be in (0, 1] (got {TopP}).");
        Check(RepetitionPenalty > 0 && double.IsFinite(RepetitionPenalty), $"repetition_penalty must be a positive number (got {RepetitionPenalty}).");
        Check(NoRepeatNgramSize >= 0, $"no_repeat_ngram_size must be 0 (off) or positive (got {NoRepeatNgramSize}).");
        Check(double.IsFinite(LengthPenalty), "length_penalty must be a finite number.");
    }
}

/// <summary>One generated continuation: the new tokens (a final stop token included) and its beam score.</summary>
public sealed record GeneratedSequence(IReadOnlyList<int> Tokens, double? Score);
