using Blip2Sharp.Generation;

namespace Blip2Sharp.Tasks;

/// <summary>A setting refused, with the name of the parameter the caller gave it by.</summary>
public sealed class InvalidSettingException(string param, string message) : ArgumentException(message)
{
    public string Param { get; } = param;
    public override string Message => base.Message;
}

/// <summary>
/// Chat decoding settings as OpenAI-style clients give them (every one optional), turned into generate()'s options:
/// temperature 0 or absent is greedy decoding (the CLI's default), above 0 sampling; n sequences need sampling or
/// num_beams ≥ n; max_tokens defaults to 30 (`blip2 caption` and `blip2 chat`). BLIP-2's extras keep transformers'
/// names. Shared by the server's chat completions and the IChatClient.
/// </summary>
public sealed record ChatSettings
{
    public const int DefaultMaxTokens = 30;

    public int? MaxTokens { get; init; }
    /// <summary>The name max_tokens arrived by, for error messages (max_tokens, max_completion_tokens,
    /// MaxOutputTokens).</summary>
    public string MaxTokensName { get; init; } = "max_tokens";
    public double? Temperature { get; init; }
    public double? TopP { get; init; }
    public int? TopK { get; init; }
    public long? Seed { get; init; }
    public int? N { get; init; }
    public int? NumBeams { get; init; }
    public double? LengthPenalty { get; init; }
    public double? RepetitionPenalty { get; init; }
    public int? NoRepeatNgramSize { get; init; }
    public int? MinNewTokens { get; init; }

    /// <summary>The options, checked; a refusal (<see cref="InvalidSettingException"/>) names its parameter.</summary>
    public GenerationOptions ToOptions(int maxTokensCap = int.MaxValue, int maxSequences = int.MaxValue)
    {
        int maxTokens = MaxTokens ?? DefaultMaxTokens;
        if (maxTokens < 1) throw new InvalidSettingException(MaxTokensName,
            $"{MaxTokensName} must be at least 1 (got {maxTokens}).");
        if (maxTokens > maxTokensCap)
            throw new InvalidSettingException(MaxTokensName,
                $"{MaxTokensName} {maxTokens} is above this server's cap of {maxTokensCap}; ask for fewer.");
        double temperature = Temperature ?? 0;
        if (temperature is < 0 or > 2 || double.IsNaN(temperature))
            throw new InvalidSettingException("temperature",
                $"temperature must be between 0 and 2 (got {temperature}).");
        bool sample = temperature > 0;
        int n = N ?? 1, beams = NumBeams ?? 1;
        if (n < 1) throw new InvalidSettingException("n", $"n must be at least 1 (got {n}).");
        if (n > 1 && !sample && beams < n)
            throw new InvalidSettingException("n",
                $"n = {n} needs sampling (temperature above 0) or num_beams of at least {n}: greedy decoding gives one answer.");
        if (sample && beams > 1)
            throw new InvalidSettingException("num_beams",
                "num_beams above 1 is beam search, which does not sample: set temperature to 0 or num_beams to 1.");
        if (Math.Max(n, beams) > maxSequences)
            throw new InvalidSettingException(beams > 1 ? "num_beams" : "n",
                $"the request decodes {Math.Max(n, beams)} sequences but at most {maxSequences} fit a step.");
        var o = new GenerationOptions
        {
            MaxNewTokens = maxTokens,
            MinNewTokens = MinNewTokens ?? 0,
            NumBeams = beams,
            NumReturnSequences = n,
            DoSample = sample,
            Temperature = sample ? temperature : 1.0,
            TopP = TopP ?? 1.0,
            TopK = TopK ?? 50,
            Seed = Seed is { } s ? unchecked((ulong)s) : null,
            LengthPenalty = LengthPenalty ?? 1.0,
            RepetitionPenalty = RepetitionPenalty ?? 1.0,
            NoRepeatNgramSize = NoRepeatNgramSize ?? 0,
        };
        try
        {
            o.Validate();
        }
        catch (ArgumentException e)
        {
            throw new InvalidSettingException(ParamOf(e.Message), e.Message);
        }
        return o;
    }

    /// <summary>generate()'s names in GenerationOptions' messages → the parameter the client used.</summary>
    private string ParamOf(string message) =>
        new[] { "max_new_tokens", "min_new_tokens", "num_beams", "num_return_sequences", "temperature", "top_k",
            "top_p",
            "repetition_penalty", "no_repeat_ngram_size", "length_penalty" }.FirstOrDefault(message.StartsWith) switch
        {
            "num_return_sequences" => "n",
            "max_new_tokens" => MaxTokensName,
            null => "",
            var p => p,
        };
}
