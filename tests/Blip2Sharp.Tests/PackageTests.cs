using System.IO.Compression;
using System.Text.Json.Nodes;
using System.Xml.Linq;
using Xunit;

namespace Blip2Sharp.Tests;

/// <summary>
/// What `dotnet pack` makes: the library package with its metadata, and the `blip2` dotnet tool, installed from a local
/// folder into a fresh tool path, where `blip2 --version` and `blip2 demo` run (the demo model and the native-library
/// fix travel with it).
/// </summary>
public class PackageTests
{
    private static CliRunner.Result Run(string program, string workDir, params string[] args) =>
        CliRunner.Program(program, workDir, TimeSpan.FromMinutes(5), CliRunner.Quiet, args);

    private static string Configuration => AppContext.BaseDirectory.Contains("/Release/") ? "Release" : "Debug";

    private static string NuGetCache(string id, string version) => Path.Combine(Environment.GetEnvironmentVariable("NUGET_PACKAGES")
        ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages"), id, version);

    [Fact]
    public void TheLibraryPackageCarriesItsMetadataDocsAndSymbols()
    {
        string repo = ConsumerAppTests.RepoRoot();
        string feed = Fixtures.TempDir();
        var pack = Run("dotnet", repo, "pack", "src/Blip2Sharp/Blip2Sharp.csproj", "--no-build", "-c", Configuration, "-o", feed);
        Assert.True(pack.ExitCode == 0, pack.Stdout + pack.Stderr);
        string version = XDocument.Load(Path.Combine(repo, "Directory.Build.props")).Descendants("Version").Single().Value;
        using var zip = ZipFile.OpenRead(Path.Combine(feed, $"Blip2Sharp.{version}.nupkg"));
        var nuspec = XDocument.Load(zip.Entries.Single(e => e.FullName.EndsWith(".nuspec")).Open());
        string Meta(string name) => nuspec.Descendants().Single(e => e.Name.LocalName == name).Value;
        Assert.Equal("Blip2Sharp", Meta("id"));
        Assert.Equal(version, Meta("version"));
        Assert.Equal("MIT", Meta("license"));
        Assert.Equal("README.md", Meta("readme"));
        Assert.Contains("BLIP-2", Meta("description"));
        var files = zip.Entries.Select(e => e.FullName).ToList();
        Assert.Contains("README.md", files);
        Assert.Contains("LICENSE", files);
        Assert.Contains("lib/net10.0/Blip2Sharp.xml", files);                   // XML docs of the public API
        Assert.Contains("buildTransitive/Blip2Sharp.targets", files);           // the native-library fix
        Assert.True(File.Exists(Path.Combine(feed, $"Blip2Sharp.{version}.snupkg")), "symbols package");
    }

    [Fact]
    public void TheToolInstallsFromAFolderAndRunsTheDemo()
    {
        string repo = ConsumerAppTests.RepoRoot();
        // The real version: `blip2 --version` reports the one compiled in. NuGet's cache keeps a package by id and
        // version, so the copy a former run extracted is removed first, or the install would take it instead.
        string version = XDocument.Load(Path.Combine(repo, "Directory.Build.props")).Descendants("Version").Single().Value;
        string cache = NuGetCache("blip2sharp.cli", version);
        string feed = Fixtures.TempDir(), tools = Fixtures.TempDir(), work = Fixtures.TempDir();
        try
        {
            if (Directory.Exists(cache)) Directory.Delete(cache, recursive: true);
            var pack = Run("dotnet", repo, "pack", "src/Blip2Sharp.Cli/Blip2Sharp.Cli.csproj", "--no-build", "-c", Configuration,
                "-o", feed);
            Assert.True(pack.ExitCode == 0, pack.Stdout + pack.Stderr);
            var install = Run("dotnet", work, "tool", "install", "Blip2Sharp.Cli", "--tool-path", tools, "--add-source", feed,
                "--version", version);
            Assert.True(install.ExitCode == 0, install.Stdout + install.Stderr);
            string blip2 = Path.Combine(tools, "blip2");
            var v = Run(blip2, work, "--version");
            Assert.True(v.ExitCode == 0, v.Stderr);
            Assert.Equal(version, v.Stdout.Trim());
            var demo = Run(blip2, work, "demo", "--scenes", "2", "--seed", "3", "--out", "out");
            Assert.True(demo.ExitCode == 0, demo.Stdout + demo.Stderr);
            var results = JsonNode.Parse(File.ReadAllText(Path.Combine(work, "out", "results.json")))!;
            Assert.NotNull(results);
            Assert.True(File.Exists(Path.Combine(work, "out", "grid.png")));
        }
        finally
        {
            if (Directory.Exists(cache)) Directory.Delete(cache, recursive: true);
        }
    }
}
