using System.Text.Json.Nodes;
using Blip2Sharp.Loading;
using Xunit;

namespace Blip2Sharp.Tests;

public class CliFoundationTests
{
    [Theory]
    [InlineData("preprocess-224")]
    [InlineData("preprocess-364")]
    public void PreprocessReproducesTheReferenceForEveryImage(string fixture)
    {
        var goldens = Fixtures.Goldens(fixture);
        var manifest = Fixtures.Manifest(fixture);
        var images = Directory.GetFiles(Path.Combine(Fixtures.Dir(fixture), "images")).Order().ToList();
        string outFile = Path.Combine(Fixtures.TempDir(), "pixels.safetensors");
        var r = CliRunner.Run(["preprocess", .. images, "--model", Fixtures.Dir(fixture), "--out", outFile]);
        Assert.True(r.ExitCode == 0, r.Stderr);

        using var file = SafetensorsFile.Open(outFile);
        using var pv = file.ReadTensor("pixel_values");
        int size = fixture.EndsWith("224") ? 224 : 364;
        Assert.Equal(new long[] { images.Count, 3, size, size }, pv.shape);
        var mean = new[] { 0.48145466, 0.4578275, 0.40821073 };
        var std = new[] { 0.26862954, 0.26130258, 0.27577711 };
        int comparedU8 = 0;
        for (int b = 0; b < images.Count; b++)
        {
            string stem = Path.GetFileNameWithoutExtension(images[b]);
            bool jpeg = images[b].EndsWith(".jpg");
            var chw = pv[b].contiguous().data<float>().ToArray();
            if (goldens.TryGetValue("resized_u8." + stem, out var resized))
            {
                // Recover the uint8 image from pixel_values and compare with PIL's resize output.
                var want = resized.data<byte>().ToArray();
                int hw = size * size, maxDiff = 0;
                for (int i = 0; i < hw; i++)
                {
                    for (int c = 0; c < 3; c++)
                    {
                        int u = (int)Math.Round((chw[c * hw + i] * std[c] + mean[c]) * 255);
                        maxDiff = Math.Max(maxDiff, Math.Abs(u - want[i * 3 + c]));
                    }
                }
                Assert.True(maxDiff <= (jpeg ? 1 : 0), $"{stem}: resized uint8 differs by {maxDiff}");
                comparedU8++;
            }
        }
        Assert.True(comparedU8 >= 4, $"only {comparedU8} resized images compared");

        // pixel_values rows of the images the reference batched.
        var expected = goldens["pixel_values"];
        var names = manifest["pixel_values_images"]!.AsArray().Select(n => (string)n!).ToList();
        for (int k = 0; k < names.Count; k++)
        {
            int b = images.FindIndex(p => Path.GetFileName(p) == names[k]);
            double maxAbs = (pv[b] - expected[k]).abs().max().item<float>();
            double tol = names[k].EndsWith(".jpg") ? 1.0 / 255 / 0.26 + 1e-6 : 1e-6;
            Assert.True(maxAbs <= tol, $"{names[k]}: max |diff| {maxAbs}");
        }
    }

    [Fact]
    public void PreprocessWithSizeUsesTheBlip2Defaults()
    {
        string outFile = Path.Combine(Fixtures.TempDir(), "p.safetensors");
        string img = Path.Combine(Fixtures.Dir("preprocess-224"), "images", "rgba_50x80.png");
        var r = CliRunner.Run("preprocess", img, "--size", "224", "--out", outFile);
        Assert.Equal(0, r.ExitCode);
        using var f = SafetensorsFile.Open(outFile);
        using var pv = f.ReadTensor("pixel_values");
        var expected = Fixtures.Goldens("preprocess-224")["pixel_values"][0];
        Assert.Equal(0f, (pv[0] - expected).abs().max().item<float>());
    }

    [Fact]
    public void InspectDescribesACheckpoint()
    {
        var r = CliRunner.Run("inspect", Fixtures.Dir("tiny-t5"), "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var j = JsonNode.Parse(r.Stdout)!;
        Assert.Equal("Blip2ForConditionalGeneration", (string)j["architecture"]!);
        Assert.Equal("t5", (string)j["sizes"]!["language_model"]!["type"]!);
        Assert.Equal("gated-gelu", (string)j["sizes"]!["language_model"]!["activation"]!);
        Assert.Equal(40, (int)j["sizes"]!["vision"]!["hidden_size"]!);
        Assert.Equal("safetensors", (string)j["weight_format"]!);
        Assert.Contains("spiece.model", (string)j["tokenizer"]!);
        Assert.Empty(j["missing"]!.AsArray());
        // The parts add up to every stored element of the file.
        using var reader = CheckpointReader.Open(Fixtures.Dir("tiny-t5"));
        long total = reader.Names.Sum(n => reader.Describe(n).Shape.Aggregate(1L, (a, b) => a * b));
        Assert.Equal(total, (long)j["parameters_total"]!);
        Assert.Equal(total, j["parameters"]!.AsObject().Sum(kv => (long)kv.Value!));
    }

    [Fact]
    public void InspectSaysWhatIsMissing()
    {
        var r = CliRunner.Run("inspect", Fixtures.Dir("manifests/blip2-opt-2.7b"));
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("weights (model.safetensors", r.Stdout);
        Assert.Contains("OPT 32 layers, hidden 2560", r.Stdout);
    }

    [Theory]
    [InlineData("inspect", "/no/such/folder", "checkpoint folder not found")]
    [InlineData("preprocess", "/no/such/image.png", "file not found")]
    [InlineData("preprocess", "TEXTFILE", "not an image")]
    public void BadInputIsOneLineAndNonZero(string command, string path, string message)
    {
        if (path == "TEXTFILE")
        {
            path = Path.Combine(Fixtures.TempDir(), "notes.jpg");
            File.WriteAllText(path, "plain text, not a picture\n");
        }
        var r = command == "inspect"
            ? CliRunner.Run("inspect", path)
            : CliRunner.Run("preprocess", path, "--size", "32", "--out", Path.Combine(Fixtures.TempDir(), "x.safetensors"));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains(message, r.Stderr);
        Assert.Single(r.Stderr.Trim().Split('\n'));
        Assert.StartsWith("blip2: error:", r.Stderr);
    }

    [Fact]
    public void UsageErrorsExitWithTwo()
    {
        var r = CliRunner.Run("preprocess", "a.png", "--out", "x.safetensors");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--model DIR or --size N", r.Stderr);
    }
}
