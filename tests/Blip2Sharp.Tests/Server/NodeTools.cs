using System.Diagnostics;

namespace Blip2Sharp.Tests.Server;

/// <summary>
/// Node.js programs the tests run against the server with clients nobody here wrote: the official `openai` npm
/// package and playwright-core (driving Debian's Chromium). The packages are installed once per test run with npm
/// into a temporary folder; Chromium is installed with apt-get if it is missing (CI runs as root).
/// </summary>
public static class NodeTools
{
    public const string OpenAiPackage = "openai@6.49.0";
    public const string PlaywrightPackage = "playwright-core@1.65.2";
    public const string Chromium = "/usr/bin/chromium";

    private static readonly Lazy<string> Folder = new(Install, LazyThreadSafetyMode.ExecutionAndPublication);
    private static readonly Lazy<bool> ChromiumReady = new(InstallChromium,
        LazyThreadSafetyMode.ExecutionAndPublication);

    private static string Install()
    {
        string folder = Path.Combine(Path.GetTempPath(), $"blip2-node-{Environment.ProcessId}");
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "package.json"),
            "{\"name\": \"blip2-conformance\", \"private\": true, \"type\": \"module\"}");
        var r = Run("npm", folder, TimeSpan.FromMinutes(5), null, "install", "--no-audit", "--no-fund", OpenAiPackage,
            PlaywrightPackage);
        if (r.ExitCode != 0) throw new InvalidOperationException($"npm install failed: {r.Stderr}");
        return folder;
    }

    private static bool InstallChromium()
    {
        if (File.Exists(Chromium)) return true;
        var update = Run("apt-get", "/", TimeSpan.FromMinutes(10), null, "update");
        var install = Run("apt-get", "/", TimeSpan.FromMinutes(10), null, "install", "-y", "chromium");
        if (!File.Exists(Chromium))
            throw new InvalidOperationException($"Chromium is missing and apt-get could not install it (run `apt-get install chromium` as root): {update.Stderr} {install.Stderr}");
        return true;
    }

    /// <summary>Runs a Node.js module (its text) in the packages' folder with arguments; returns exit code and
    /// output.</summary>
    public static CliRunner.Result RunScript(string script, params string[] args)
    {
        if (script.Contains("playwright")) _ = ChromiumReady.Value;
        string folder = Folder.Value;
        string file = Path.Combine(folder, $"script-{Guid.NewGuid():N}.mjs");
        File.WriteAllText(file, script);
        return Run("node", folder, TimeSpan.FromMinutes(3), null, [file, .. args]);
    }

    private static CliRunner.Result Run(string program, string folder, TimeSpan timeout, string? input,
        params string[] args) =>
        CliRunner.Program(program, folder, timeout, new Dictionary<string, string> { ["DEBIAN_FRONTEND"] = "noninteractive" },
            args, input);
}
