using System.Diagnostics;

namespace Blip2Sharp.Cli;

/// <summary>
/// Runs a long, resumable command in a child process and starts it again when the native library crashes.
/// With TorchSharp 0.107 a Tensor wrapper that nothing roots can be finalized by the GC while a native call still
/// uses its handle (dotnet/TorchSharp PRs #1434, #1496), which ends the process with SIGSEGV, beyond any managed
/// handler. The cause found in training (AdamW's gradient wrappers, see AdamW.ZeroGrad) is fixed; this stays as a
/// safety net: every phase of `blip2 demo train` continues from what it saved, so starting again loses at most the
/// steps since the last checkpoint.
/// </summary>
internal static class NativeCrashRestart
{
    private const string ChildVariable = "BLIP2_SUPERVISED_CHILD";
    private const string StartedVariable = "BLIP2_STARTED_UNIX_MS";

    /// <summary>True inside the child process (which does the work).</summary>
    public static bool IsChild => Environment.GetEnvironmentVariable(ChildVariable) == "1";

    /// <summary>When the whole command started, restarts included (the child's clock continues the parent's).</summary>
    public static DateTimeOffset Started => Environment.GetEnvironmentVariable(StartedVariable) is { } ms && long.TryParse(ms, out long v)
        ? DateTimeOffset.FromUnixTimeMilliseconds(v)
        : Process.GetCurrentProcess().StartTime.ToUniversalTime();

    /// <summary>For tests: when the variable names a file that does not exist yet, create it and abort (once).</summary>
    public static void CrashOnceIfAsked()
    {
        if (Environment.GetEnvironmentVariable("BLIP2_TEST_CRASH_ONCE") is not { Length: > 0 } marker || File.Exists(marker)) return;
        File.WriteAllText(marker, "");
        Environment.FailFast("blip2: crash asked for by BLIP2_TEST_CRASH_ONCE");
    }

    /// <summary>
    /// Runs this process's own command line as a child, again after a crash by SIGSEGV, SIGBUS or SIGABRT, at most
    /// <paramref name="attempts"/> times in all; returns the child's exit code. Ctrl-C and kill are not crashes.
    /// </summary>
    public static int Supervise(int attempts, Action<string> log)
    {
        var args = Environment.GetCommandLineArgs();
        string started = Started.ToUnixTimeMilliseconds().ToString(System.Globalization.CultureInfo.InvariantCulture);
        for (int attempt = 1; ; attempt++)
        {
            var psi = new ProcessStartInfo(Environment.ProcessPath!) { UseShellExecute = false };
            // Under `dotnet blip2.dll` the host is dotnet and args[0] the dll; under the apphost, args[0] is the program itself.
            if (Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet") psi.ArgumentList.Add(args[0]);
            foreach (var a in args.Skip(1)) psi.ArgumentList.Add(a);
            psi.Environment[ChildVariable] = "1";
            psi.Environment[StartedVariable] = started;
            using var child = Process.Start(psi)!;
            child.WaitForExit();
            // .NET reports a child killed by signal N as exit code 128 + N.
            int signal = child.ExitCode - 128;
            if (signal is not (11 or 7 or 6) || attempt == attempts) return child.ExitCode;
            log($"the native library crashed (signal {signal}, attempt {attempt} of {attempts}); continuing from the last checkpoint");
        }
    }
}
