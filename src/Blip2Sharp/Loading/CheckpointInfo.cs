using Blip2Sharp.Configuration;

namespace Blip2Sharp.Loading;

/// <summary>What a checkpoint folder holds, read from its JSON files and weight headers (no weights loaded).</summary>
public sealed record CheckpointInfo
{
    public required string Folder { get; init; }
    public Blip2Config? Config { get; init; }
    public string? Architecture { get; init; }
    public string? WeightFormat { get; init; }
    public IReadOnlyList<string> WeightFiles { get; init; } = [];
    public int TensorCount { get; init; }
    /// <summary>Stored parameters per part: vision_model, qformer, language_model, and the rest by top-level name.</summary>
    public IReadOnlyDictionary<string, long> ParametersByPart { get; init; } = new Dictionary<string, long>();
    public IReadOnlyDictionary<string, int> TensorsByDType { get; init; } = new Dictionary<string, int>();
    public string? TokenizerKind { get; init; }
    public IReadOnlyList<string> Missing { get; init; } = [];
    public IReadOnlyList<string> Warnings { get; init; } = [];

    public long TotalParameters => ParametersByPart.Values.Sum();

    public static CheckpointInfo Read(string folder)
    {
        CheckpointFolder.RequireNotFile(folder);
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"{folder}: checkpoint folder not found.");
        string P(string f) => Path.Combine(folder, f);
        var warnings = new ConfigWarnings();
        var missing = new List<string>();

        Blip2Config? config = null;
        if (File.Exists(P("config.json"))) config = Blip2Config.Load(folder, warnings);
        else missing.Add("config.json (architecture and sizes)");

        string? format = null;
        IReadOnlyList<string> files = [];
        int count = 0;
        var parts = new Dictionary<string, long>(StringComparer.Ordinal);
        var dtypes = new Dictionary<string, int>(StringComparer.Ordinal);
        if (CheckpointReader.HasWeights(folder))
        {
            using var reader = CheckpointReader.Open(folder);
            format = reader.Format;
            files = reader.Files.Select(Path.GetFileName).ToList()!;
            count = reader.Names.Count;
            foreach (var name in reader.Names)
            {
                var (dtype, shape) = reader.Describe(name);
                string part = name.Split('.')[0];
                parts[part] = parts.GetValueOrDefault(part) + shape.Aggregate(1L, (a, b) => a * b);
                string dt = DType.ToName(dtype);
                dtypes[dt] = dtypes.GetValueOrDefault(dt) + 1;
            }
        }
        else missing.Add("weights (model.safetensors, a sharded index, or pytorch_model.bin)");

        if (!File.Exists(P("preprocessor_config.json"))) missing.Add("preprocessor_config.json (image size, mean, std; defaults apply)");
        string? tokenizer = TokenizerKindOf(folder, warnings);
        if (tokenizer is null) missing.Add("tokenizer files (tokenizer.json, vocab.json + merges.txt, spiece.model or vocab.txt)");
        bool generates = config?.Architectures?.Contains("Blip2ForConditionalGeneration") ?? false;
        if (generates && !File.Exists(P("generation_config.json"))) missing.Add("generation_config.json (decoding defaults)");
        if (generates && config?.ImageTokenIndex is not null && !File.Exists(P("processor_config.json")))
            missing.Add("processor_config.json (num_query_tokens for the <image> tokens)");

        return new CheckpointInfo
        {
            Folder = folder,
            Config = config,
            Architecture = config?.Architectures is { Length: > 0 } a ? string.Join(", ", a) : null,
            WeightFormat = format,
            WeightFiles = files,
            TensorCount = count,
            ParametersByPart = parts,
            TensorsByDType = dtypes,
            TokenizerKind = tokenizer,
            Missing = missing,
            Warnings = warnings.Items,
        };
    }

    private static string? TokenizerKindOf(string folder, ConfigWarnings warnings)
    {
        string P(string f) => Path.Combine(folder, f);
        string? cls = null;
        if (File.Exists(P("tokenizer_config.json"))) cls = TokenizerConfig.Load(P("tokenizer_config.json"), warnings).TokenizerClass;
        string? kind =
            File.Exists(P("vocab.json")) && File.Exists(P("merges.txt")) ? "byte-level BPE (vocab.json + merges.txt)"
            : File.Exists(P("spiece.model")) ? "SentencePiece unigram (spiece.model)"
            : File.Exists(P("vocab.txt")) ? "WordPiece (vocab.txt)"
            : File.Exists(P("tokenizer.json")) ? "tokenizer.json"
            : null;
        return kind is null ? null : cls is null ? kind : $"{cls}: {kind}";
    }
}
