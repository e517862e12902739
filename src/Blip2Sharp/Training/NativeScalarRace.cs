using System.Runtime.InteropServices;

namespace Blip2Sharp.Training;

/// <summary>
/// Recognises the native error TorchSharp 0.107's Scalar race produces: an operator converts a number to a Scalar that
/// the GC may finalize while libtorch still reads it (dotnet/TorchSharp PRs #1434, #1496), which surfaces at random in
/// long runs as "Unknown scalar type" or a failed check in c10/core/Scalar.h. Hot paths use long-lived Scalars
/// (Modeling/Layers/Scalars); the training loops repeat a step that still hits it, since nothing was applied yet.
/// </summary>
public static class NativeScalarRace
{
    public static bool Matches(ExternalException e) =>
        e.Message.Contains("Scalar.h", StringComparison.Ordinal) || e.Message.Contains("Unknown scalar type", StringComparison.Ordinal);

    /// <summary>Runs work again when it hits the race, up to three times: inference, or a training step before its update.</summary>
    public static T Retry<T>(Func<T> work, Action<string>? log = null)
    {
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                return work();
            }
            catch (ExternalException e) when (attempt < 4 && Matches(e))
            {
                log?.Invoke($"{Describe(e)}; running it again");
            }
        }
    }

    public static string Describe(ExternalException e) => $"native error \"{e.Message.Split('\n')[0].Trim()}\" (TorchSharp's Scalar race)";
}
