using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Blip2Sharp.Modeling.Layers;

/// <summary>
/// Shortens how long libtorch's OpenMP threads spin after a parallel region (GOMP_SPINCOUNT=1000, a few tens of
/// microseconds, instead of libgomp's 300,000), unless the user has set GOMP_SPINCOUNT or OMP_WAIT_POLICY.
/// Decoding runs the one-row products on .NET threads (<see cref="FloatGemv"/>, <see cref="Int8Weight"/>) between
/// small libtorch ops (attention over the cache, layer norms); with the default, a finished OpenMP worker keeps
/// spinning for milliseconds and, with as many threads as cores, takes a core from the product that follows.
/// Measured on blip2-opt-2.7b, 2 cores: 0.318 s per token with the default, 0.250 s with 1000 (0.242 s with
/// OMP_WAIT_POLICY=PASSIVE, which however made training the demo's language model 19 % slower; 1000 costs it ≤ 5 %).
/// libgomp reads the variables once, when libtorch is loaded, and .NET's Environment.SetEnvironmentVariable does
/// not reach the C library's environment, so it is set with setenv before any code of this assembly runs.
/// </summary>
public static partial class OpenMpSpinCount
{
    public const string Variable = "GOMP_SPINCOUNT";
    public const string Spins = "1000";

    [ModuleInitializer]
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Usage", "CA2255", Justification = "libgomp reads the variable when libtorch loads, which can be the first thing a caller of this library does; nothing else of the library's runs earlier.")]
    internal static void Initialize()
    {
        if (OperatingSystem.IsLinux() && GetEnv("OMP_WAIT_POLICY") == IntPtr.Zero)
            _ = SetEnv(Variable, Spins, overwrite: 0);
    }

    /// <summary>The spin count in the C library's environment, as libgomp sees it (null when unset).</summary>
    public static string? Current => OperatingSystem.IsLinux() ? Marshal.PtrToStringUTF8(GetEnv(Variable)) : null;

    [LibraryImport("libc.so.6", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int SetEnv(string name, string value, int overwrite);

    [LibraryImport("libc.so.6", EntryPoint = "getenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial IntPtr GetEnv(string name);
}
