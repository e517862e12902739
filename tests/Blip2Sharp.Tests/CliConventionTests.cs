using System.Text.Json.Nodes;
using System.Xml.Linq;
using Xunit;

namespace Blip2Sharp.Tests;

/// <summary>The conventions every command shares: `--`, `--version`, the exit codes in the help.</summary>
public class CliConventionTests
{
    [Fact]
    public void DoubleDashEndsTheOptions()
    {
        var r = CliRunner.Run("tokenize", "--json", "--", "-x", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var results = JsonNode.Parse(r.Stdout)!["results"]!.AsArray();
        // Both values after `--` are texts, even the one that reads like an option.
        Assert.Equal(["-x", "--json"], results.Select(x => (string)x!["text"]!));
        Assert.Equal("-x", (string)results[0]!["decoded"]!);
    }

    [Fact]
    public void VersionIsThePackageVersion()
    {
        string props = Path.Combine(ConsumerAppTests.RepoRoot(), "Directory.Build.props");
        string version = XDocument.Load(props).Descendants("Version").Single().Value;
        var r = CliRunner.Run("--version");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(version, r.Stdout.Trim());
    }

    [Fact]
    public void HelpListsTheExitCodes()
    {
        foreach (var args in new[] { new[] { "--help" }, ["caption", "--help"] })
        {
            var r = CliRunner.Run(args);
            Assert.Equal(0, r.ExitCode);
            Assert.Contains("EXIT CODES:", r.Stdout);
            foreach (var code in new[] { "0 ", "1 ", "2 ", "3 ", "130 " }) Assert.Contains("    " + code, r.Stdout);
            Assert.Contains("`--` ends the options", r.Stdout);
        }
    }
}
