using Blip2Sharp.Loading;
using Xunit;

namespace Blip2Sharp.Tests;

public class CliDumpTests
{
    [Theory]
    [InlineData("tiny-opt")]
    [InlineData("tiny-t5")]
    [InlineData("tiny-itm")]
    public void DumpOfTheGoldenInputsReproducesEveryForwardGolden(string fixture)
    {
        string outFile = Path.Combine(Fixtures.TempDir(), "out.safetensors");
        string goldens = Path.Combine(Fixtures.Dir(fixture), "golden.safetensors");
        var r = CliRunner.Run("dump", "--model", Fixtures.Dir(fixture), "--inputs", goldens, "--out", outFile);
        Assert.True(r.ExitCode == 0, r.Stderr);

        var g = new GoldenAssert(fixture);
        var outputs = Fixtures.Manifest(fixture)["outputs"]!.AsObject()
            .Where(kv => (string)kv.Value!["dtype"]! == "float32").Select(kv => kv.Key).ToList();
        Assert.NotEmpty(outputs);
        using var dumped = SafetensorsFile.Open(outFile);
        foreach (var name in outputs)
        {
            Assert.True(dumped.Contains(name), $"dump lacks {name}");
            using var t = dumped.ReadTensor(name);
            g.Close(name, t);
        }
    }
}
