using System.Text.Json.Serialization;

namespace Blip2Sharp.Configuration;

/// <summary>processor_config.json of Blip2Processor.</summary>
public sealed record ProcessorConfig
{
    /// <summary>How many &lt;image&gt; tokens the processor puts in front of each prompt; null: legacy processor.</summary>
    [JsonPropertyName("num_query_tokens")] public int? NumQueryTokens { get; init; }
    [JsonPropertyName("processor_class")] public string? ProcessorClass { get; init; }

    public static ProcessorConfig Load(string file, ConfigWarnings warnings) =>
        ConfigJson.Bind<ProcessorConfig>(ConfigJson.ReadObject(file), file, warnings);
}
