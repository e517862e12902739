using System.Diagnostics;

namespace Blip2Sharp.Tests;

/// <summary>Runs the real `blip2` program (built next to the tests) as a child process.</summary>
public static class CliRunner
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr);

    public static Result Run(params string[] args) => RunWith(new Dictionary<string, string>(), args);

    /// <summary>Runs blip2 with this text on its standard input.</summary>
    public static Result RunWithInput(string input, params string[] args) => RunWith(new Dictionary<string, string>(), args, input);

    /// <summary>Runs blip2 with extra environment variables (and standard input, if given; else none).</summary>
    public static Result RunWith(IReadOnlyDictionary<string, string> environment, string[] args, string? input = null) =>
        Program("dotnet", AppContext.BaseDirectory, TimeSpan.FromMinutes(5),
            new Dictionary<string, string>(environment) { ["NO_COLOR"] = environment.GetValueOrDefault("NO_COLOR", "1"),
                ["COLUMNS"] = environment.GetValueOrDefault("COLUMNS", "200") },
            [Path.Combine(AppContext.BaseDirectory, "blip2.dll"), .. args], input);

    /// <summary>dotnet and blip2 without telemetry notices, banners or colours.</summary>
    public static IReadOnlyDictionary<string, string> Quiet { get; } = new Dictionary<string, string>
    {
        ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1", ["DOTNET_NOLOGO"] = "1", ["NO_COLOR"] = "1",
    };

    /// <summary>
    /// Runs any program as a child process (dotnet, npm, node, apt-get, an installed tool) in a folder, with extra
    /// environment variables and standard input (closed at once if none); killed and reported after the timeout.
    /// </summary>
    public static Result Program(string program, string workDir, TimeSpan timeout,
        IReadOnlyDictionary<string, string>? environment, string[] args, string? input = null)
    {
        var psi = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardInput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workDir,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        if (input is not null) p.StandardInput.Write(input);
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} {string.Join(' ', args)} did not finish in {timeout}");
        }
        return new Result(p.ExitCode, stdout.Result, stderr.Result);
    }
}
