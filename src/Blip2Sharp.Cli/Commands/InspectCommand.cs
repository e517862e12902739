using System.ComponentModel;
using System.Text.Json;
using Blip2Sharp.Configuration;
using Blip2Sharp.Loading;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Blip2Sharp.Cli.Commands;

public sealed class InspectCommand : Command<InspectCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandArgument(0, "<DIR>")]
        [Description("A checkpoint folder in the Hugging Face layout (config.json, weights, tokenizer and processor files).")]
        public string Folder { get; init; } = "";

        [CommandOption("--json")]
        [Description("Print a JSON object instead of a table.")]
        public bool Json { get; init; }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var info = CheckpointInfo.Read(settings.Folder);
        foreach (var w in info.Warnings) Blip2Cli.Warn(w);
        if (settings.Json) Blip2Cli.Out(ToJson(info));
        else Print(info);
        return 0;
    }

    private static Dictionary<string, object?> Sizes(Blip2Config c) => new()
    {
        ["vision"] = new { hidden_size = c.VisionConfig.HiddenSize, layers = c.VisionConfig.NumHiddenLayers, heads = c.VisionConfig.NumAttentionHeads, image_size = c.VisionConfig.ImageSize, patch_size = c.VisionConfig.PatchSize },
        ["qformer"] = new { hidden_size = c.QFormerConfig.HiddenSize, layers = c.QFormerConfig.NumHiddenLayers, heads = c.QFormerConfig.NumAttentionHeads, queries = c.NumQueryTokens, cross_attention_frequency = c.QFormerConfig.CrossAttentionFrequency, text_input = c.QFormerConfig.UseQFormerTextInput },
        ["language_model"] = c.TextConfig switch
        {
            OptConfig o => new { type = "opt", hidden_size = o.HiddenSize, layers = o.NumHiddenLayers, heads = o.NumAttentionHeads, ffn_dim = o.FfnDim, vocab_size = o.VocabSize } as object,
            T5Config t => new { type = "t5", d_model = t.DModel, encoder_layers = t.NumLayers, decoder_layers = t.NumDecoderLayers, heads = t.NumHeads, d_ff = t.DFf, activation = (t.IsGatedAct ? "gated-" : "") + t.DenseActFn, vocab_size = t.VocabSize },
            _ => null,
        },
    };

    private static string ToJson(CheckpointInfo info) => JsonSerializer.Serialize(new Dictionary<string, object?>
    {
        ["folder"] = info.Folder,
        ["architecture"] = info.Architecture,
        ["sizes"] = info.Config is null ? null : Sizes(info.Config),
        ["image_token_index"] = info.Config?.ImageTokenIndex,
        ["weight_format"] = info.WeightFormat,
        ["weight_files"] = info.WeightFiles,
        ["tensors"] = info.TensorCount,
        ["parameters"] = info.ParametersByPart,
        ["parameters_total"] = info.TotalParameters,
        ["dtypes"] = info.TensorsByDType,
        ["tokenizer"] = info.TokenizerKind,
        ["missing"] = info.Missing,
        ["warnings"] = info.Warnings,
    }, new JsonSerializerOptions { WriteIndented = true });

    private static void Print(CheckpointInfo info)
    {
        var console = Blip2Cli.Human;
        var t = new Table().Border(TableBorder.Rounded).AddColumn("").AddColumn(Markup.Escape(info.Folder));
        void Row(string k, string v) => t.AddRow(new Text(k, new Style(decoration: Decoration.Bold)), new Text(v));
        Row("architecture", info.Architecture ?? "?");
        if (info.Config is { } c)
        {
            var v = c.VisionConfig;
            Row("vision", $"ViT {v.NumHiddenLayers} layers, hidden {v.HiddenSize}, {v.NumAttentionHeads} heads, {v.ImageSize} px / patch {v.PatchSize} ({v.NumPatches + 1} tokens)");
            var q = c.QFormerConfig;
            Row("Q-Former", $"{q.NumHiddenLayers} layers, hidden {q.HiddenSize}, {q.NumAttentionHeads} heads, {c.NumQueryTokens} queries, cross-attention every {q.CrossAttentionFrequency} layer(s){(q.UseQFormerTextInput ? ", text input" : "")}");
            Row("language model", c.TextConfig switch
            {
                OptConfig o => $"OPT {o.NumHiddenLayers} layers, hidden {o.HiddenSize}, {o.NumAttentionHeads} heads, FFN {o.FfnDim}, vocab {o.VocabSize}",
                T5Config t5 => $"T5 {t5.NumLayers}+{t5.NumDecoderLayers} layers, d_model {t5.DModel}, {t5.NumHeads} heads, d_ff {t5.DFf} {(t5.IsGatedAct ? "gated-" : "")}{t5.DenseActFn}, vocab {t5.VocabSize}",
                _ => "?",
            } + (c.QFormerConfig.UseQFormerTextInput && c.Architectures?.Contains("Blip2ForImageTextRetrieval") == true ? " (not used by retrieval)" : ""));
            Row("image tokens", c.ImageTokenIndex is { } i ? $"<image> = {i}, {c.NumQueryTokens} per prompt" : "none (legacy: queries concatenated in front)");
        }
        Row("weights", info.WeightFormat is null ? "none" : $"{info.WeightFormat}: {string.Join(", ", info.WeightFiles)} ({info.TensorCount} tensors)");
        foreach (var (part, n) in info.ParametersByPart.OrderByDescending(kv => kv.Value))
            Row("  " + part, $"{n:N0} parameters");
        if (info.TensorCount > 0) Row("  total", $"{info.TotalParameters:N0} parameters");
        Row("dtypes", info.TensorsByDType.Count == 0 ? "-" : string.Join(", ", info.TensorsByDType.Select(kv => $"{kv.Key} × {kv.Value}")));
        Row("tokenizer", info.TokenizerKind ?? "none");
        Row("missing", info.Missing.Count == 0 ? "nothing" : string.Join("\n", info.Missing));
        console.Write(t);
    }
}
