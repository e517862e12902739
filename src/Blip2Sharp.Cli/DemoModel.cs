namespace Blip2Sharp.Cli;

/// <summary>
/// The built-in demo model (BLIP-2 trained from scratch on synthetic scenes by `blip2 demo train`), shipped beside the
/// executable under models/blip2-demo: generation/ and retrieval/ checkpoints in the Hugging Face layout. It is the
/// default of every --model option, so that each command works out of the box.
/// </summary>
public static class DemoModel
{
    public static string Folder => Path.Combine(AppContext.BaseDirectory, "models", "blip2-demo");
    public static string Generation => Path.Combine(Folder, "generation");
    public static string Retrieval => Path.Combine(Folder, "retrieval");

    public const string HelpNote = "Default: the built-in demo model (synthetic scenes of shapes; try `blip2 demo`).";

    /// <summary>Tells the user, on standard error, that the built-in model answers, so a caption of shapes for a photo is no surprise.</summary>
    public static void NoteIfDefault(string model)
    {
        if (Path.GetFullPath(model).StartsWith(Folder, StringComparison.Ordinal))
            Console.Error.WriteLine("blip2: note: no --model given: using the built-in demo model (it knows only synthetic scenes of shapes).");
    }
}
