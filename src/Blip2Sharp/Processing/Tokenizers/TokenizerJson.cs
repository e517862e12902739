using System.Text.Json.Nodes;
using Blip2Sharp.Configuration;

namespace Blip2Sharp.Processing.Tokenizers;

/// <summary>Reads tokenizer.json (the fast tokenizers' single file) when a repository has nothing else.</summary>
public static class TokenizerJson
{
    public static Tokenizer Load(string folder, ConfigWarnings warnings)
    {
        string path = Path.Combine(folder, "tokenizer.json");
        var json = ConfigJson.ReadObject(path);
        var model = json["model"] as JsonObject ?? throw new InvalidConfigException($"{path}: no 'model' object.");
        string type = model["type"]?.GetValue<string>() ?? "";
        throw new NotSupportedException($"{path}: tokenizer.json models of type '{type}' are not read yet; use the slow tokenizer files (vocab.json + merges.txt, spiece.model or vocab.txt).");
    }
}
