namespace Blip2Sharp.Loading;

/// <summary>The one message for a checkpoint path that names a file instead of the checkpoint's folder.</summary>
public static class CheckpointFolder
{
    /// <summary>Throws when <paramref name="path"/> is a file: checkpoints are folders (config.json, weights, tokenizer).</summary>
    public static void RequireNotFile(string path)
    {
        if (!File.Exists(path)) return;
        string parent = Path.GetDirectoryName(Path.GetFullPath(path)) ?? ".";
        throw new Blip2Exception($"{path} is a file, not a checkpoint folder: give the folder that holds config.json, " +
            $"the weights and the tokenizer files (here perhaps {parent}).");
    }
}
