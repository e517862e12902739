using System.Text.Json.Nodes;
using Xunit;

namespace Blip2Sharp.Tests;

/// <summary>
/// A console app of a user's own, outside this repository, referencing the library as a package: it builds, loads
/// TorchSharp's native library on this machine (the build fixes travel in the package's buildTransitive/) and
/// captions an image with the README's library example.
/// </summary>
public class ConsumerAppTests
{
    private static CliRunner.Result Dotnet(string workDir, params string[] args) =>
        CliRunner.Program("dotnet", workDir, TimeSpan.FromMinutes(5), CliRunner.Quiet, args);

    internal static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Blip2Sharp.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("the repository root was not found above the tests");
    }

    [Fact]
    public void AConsoleAppReferencingThePackageCaptionsAnImage()
    {
        string repo = RepoRoot();
        string configuration = AppContext.BaseDirectory.Contains("/Release/") ? "Release" : "Debug";
        string version = $"0.0.1-consumer-test-{DateTime.UtcNow:yyyyMMddHHmmss}-{Environment.ProcessId}";
        string feed = Fixtures.TempDir(), app = Fixtures.TempDir();
        string cache = Path.Combine(Environment.GetEnvironmentVariable("NUGET_PACKAGES")
            ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages"), "blip2sharp", version);
        try
        {
            var pack = Dotnet(repo, "pack", "src/Blip2Sharp/Blip2Sharp.csproj", "--no-build", "-c", configuration, "-o", feed,
                $"-p:PackageVersion={version}");
            Assert.True(pack.ExitCode == 0, pack.Stdout + pack.Stderr);
            File.WriteAllText(Path.Combine(app, "Consumer.csproj"), $"""
                <Project Sdk="Microsoft.NET.Sdk">
                  <PropertyGroup>
                    <OutputType>Exe</OutputType>
                    <TargetFramework>net10.0</TargetFramework>
                    <ImplicitUsings>enable</ImplicitUsings>
                  </PropertyGroup>
                  <ItemGroup>
                    <PackageReference Include="Blip2Sharp" Version="{version}" />
                  </ItemGroup>
                </Project>
                """);
            File.WriteAllText(Path.Combine(app, "nuget.config"), $"""
                <?xml version="1.0" encoding="utf-8"?>
                <configuration>
                  <packageSources>
                    <add key="blip2sharp-test-feed" value="{feed}" />
                  </packageSources>
                </configuration>
                """);
            // The README's library example.
            File.WriteAllText(Path.Combine(app, "Program.cs"), """
                using Blip2Sharp.Generation;
                using Blip2Sharp.Tasks;

                using var blip2 = Blip2Pipeline.FromPretrained(args[0]);
                var caption = blip2.Run([args[1]], [""], new GenerationOptions { NumBeams = 5, MaxNewTokens = 30 })[0].Text;
                Console.WriteLine(caption);
                """);
            var build = Dotnet(app, "build", "-c", "Release");
            Assert.True(build.ExitCode == 0, build.Stdout + build.Stderr);
            string bin = Path.Combine(app, "bin", "Release", "net10.0");
            // Only this machine's native assets, not every platform's (~1.9 GB before).
            var platforms = Directory.GetDirectories(Path.Combine(bin, "runtimes")).Select(Path.GetFileName).ToList();
            Assert.DoesNotContain("win-x64", platforms);
            Assert.DoesNotContain("osx-arm64", platforms);

            string model = Path.Combine(repo, "models", "blip2-demo", "generation");
            string image = Path.Combine(Fixtures.Dir("tiny-opt"), (string)Fixtures.Manifest("tiny-opt")["images"]![0]!);
            var run = Dotnet(app, Path.Combine(bin, "Consumer.dll"), model, image);
            Assert.True(run.ExitCode == 0, run.Stdout + run.Stderr);
            var cli = CliRunner.Run("caption", image, "--model", model, "--num-beams", "5", "--max-new-tokens", "30", "--json");
            Assert.True(cli.ExitCode == 0, cli.Stderr);
            Assert.Equal((string)JsonNode.Parse(cli.Stdout)!["results"]![0]!["text"]!, run.Stdout.Trim());
        }
        finally
        {
            if (Directory.Exists(cache)) Directory.Delete(cache, recursive: true);   // one test package per run
        }
    }
}
