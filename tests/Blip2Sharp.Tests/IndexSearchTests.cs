using System.Diagnostics;
using System.Text.Json.Nodes;
using Blip2Sharp.Tasks;
using SkiaSharp;
using Xunit;

namespace Blip2Sharp.Tests;

public class IndexSearchTests
{
    private static void WriteImage(string path, int seed)
    {
        var rng = new Random(seed);
        using var bitmap = new SKBitmap(new SKImageInfo(32, 32, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        using (var canvas = new SKCanvas(bitmap))
        {
            canvas.Clear(new SKColor((byte)rng.Next(256), (byte)rng.Next(256), (byte)rng.Next(256)));
            using var paint = new SKPaint { Color = new SKColor((byte)rng.Next(256), (byte)rng.Next(256), (byte)rng.Next(256)), IsAntialias = true };
            canvas.DrawCircle(rng.Next(8, 24), rng.Next(8, 24), rng.Next(4, 12), paint);
        }
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, data.ToArray());
    }

    private static string MakeFolder(int count, bool withCorrupt)
    {
        string dir = Fixtures.TempDir();
        for (int i = 0; i < count; i++) WriteImage(Path.Combine(dir, i % 2 == 0 ? "a" : "b", $"img{i:D3}.png"), i);
        if (withCorrupt) File.WriteAllBytes(Path.Combine(dir, "corrupt.png"), [0x89, 0x50, 0x4E, 0x47, 1, 2, 3]);
        return dir;
    }

    [Fact]
    public void IndexesIncrementallyAndSearches()
    {
        string folder = MakeFolder(12, withCorrupt: true);
        string db = Path.Combine(Fixtures.TempDir(), "index.db");
        using var retriever = Blip2Retriever.FromPretrained(Fixtures.Dir("tiny-itm"));

        using (var store = new SqliteVectorStore(db))
        {
            var r1 = ImageIndex.Build(retriever, store, folder, batchSize: 5);
            Assert.Equal((12, 0, 0, 0), (r1.Added, r1.Updated, r1.Unchanged, r1.Removed));
            Assert.Single(r1.Failed);
            Assert.Equal("corrupt.png", r1.Failed[0].Path);

            var hits = ImageIndex.SearchText(retriever, store, "a red circle", top: 12, rerank: 0);
            Assert.Equal(12, hits.Count);
            Assert.Equal(hits.Select(h => h.Itc).OrderByDescending(x => x), hits.Select(h => h.Itc));
        }

        // Modify one image, delete another: re-index updates and removes only those.
        WriteImage(Path.Combine(folder, "a", "img000.png"), 999);
        File.Delete(Path.Combine(folder, "b", "img001.png"));
        using (var store = new SqliteVectorStore(db))
        {
            var r2 = ImageIndex.Build(retriever, store, folder, batchSize: 5);
            Assert.Equal((0, 1, 10, 1), (r2.Added, r2.Updated, r2.Unchanged, r2.Removed));
            Assert.Equal(11, store.Entries().Count);
            Assert.DoesNotContain("b/img001.png", store.Entries().Keys);
            var hits = ImageIndex.SearchText(retriever, store, "a cat", top: 20, rerank: 0);
            Assert.Equal(11, hits.Count);
            Assert.DoesNotContain(hits, h => h.Path == "b/img001.png");
        }
    }

    [Fact]
    public void SearchScoresAreTheReferencesItcAndItm()
    {
        // The fixture's two images indexed; each golden text searched. ITC of every hit: the golden
        // itc_logits_per_image (stored as float16); the re-ranked score of the matching image: the golden ITM match
        // logit (itm_logits_per_image[i, 1], image i with text i) plus its ITC, as LAVIS re-ranks.
        var g = Fixtures.Goldens("tiny-itm");
        var manifest = Fixtures.Manifest("tiny-itm");
        string folder = Fixtures.TempDir();
        var names = manifest["images"]!.AsArray().Select(x => (string)x!).ToList();
        for (int i = 0; i < 2; i++) File.Copy(Path.Combine(Fixtures.Dir("tiny-itm"), names[i]), Path.Combine(folder, $"{i}.png"));
        var texts = manifest["texts"]!.AsArray().Select(x => (string)x!).ToList();
        using var retriever = Blip2Retriever.FromPretrained(Fixtures.Dir("tiny-itm"));
        using var store = new SqliteVectorStore(Path.Combine(Fixtures.TempDir(), "index.db"));
        ImageIndex.Build(retriever, store, folder, batchSize: 2);
        for (int t = 0; t < 2; t++)
        {
            var itc = ImageIndex.SearchText(retriever, store, texts[t], top: 2, rerank: 0);
            foreach (var h in itc)
            {
                int i = int.Parse(Path.GetFileNameWithoutExtension(h.Path));
                Assert.Equal(g["itc_logits_per_image"][i, t].item<float>(), h.Itc, 2e-3f);
            }
            var reranked = ImageIndex.SearchText(retriever, store, texts[t], top: 2, rerank: 2);
            var match = reranked.Single(h => h.Path == $"{t}.png");
            float expected = g["itm_logits_per_image"][t, 1].item<float>() + g["itc_logits_per_image"][t, t].item<float>();
            Assert.Equal(expected, match.Score, 2e-3f);
            Assert.Equal(reranked.Select(h => h.Score).OrderByDescending(x => x), reranked.Select(h => h.Score));
        }
    }

    [Fact]
    public void AnotherModelCannotWriteIntoTheIndex()
    {
        string folder = MakeFolder(2, withCorrupt: false);
        string db = Path.Combine(Fixtures.TempDir(), "index.db");
        using (var retriever = Blip2Retriever.FromPretrained(Fixtures.Dir("tiny-itm")))
        using (var store = new SqliteVectorStore(db))
            ImageIndex.Build(retriever, store, folder);
        // The same weights with other preprocessing (another image size) make other vectors.
        string other = Fixtures.TempDir();
        foreach (var f in Directory.GetFiles(Fixtures.Dir("tiny-itm"))) File.Copy(f, Path.Combine(other, Path.GetFileName(f)));
        var pre = JsonNode.Parse(File.ReadAllText(Path.Combine(other, "preprocessor_config.json")))!;
        pre["size"] = new JsonObject { ["height"] = 36, ["width"] = 36 };
        File.WriteAllText(Path.Combine(other, "preprocessor_config.json"), pre.ToJsonString());
        using var r2 = Blip2Retriever.FromPretrained(other);
        using var s2 = new SqliteVectorStore(db);
        var e = Assert.Throws<Blip2Exception>(() => ImageIndex.Build(r2, s2, folder));
        Assert.Contains("does not mix", e.Message);
    }

    [Fact]
    public void AKilledIndexingRunLosesNothingAndARerunCompletes()
    {
        const int total = 300;
        string folder = MakeFolder(total, withCorrupt: false);
        string db = Path.Combine(Fixtures.TempDir(), "index.db");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "blip2.dll"), "index", folder, "--model", Fixtures.Dir("tiny-itm"), "--db", db, "--batch-size", "1" })
            psi.ArgumentList.Add(a);
        using (var p = Process.Start(psi)!)
        {
            p.StandardOutput.ReadToEndAsync();
            string? line;
            int done = 0;
            while ((line = p.StandardError.ReadLine()) is not null)
            {
                if (line.StartsWith("indexed ") && int.Parse(line.Split(' ', '/')[1]) >= 30) { done = 1; break; }
            }
            Assert.Equal(1, done);
            p.Kill(entireProcessTree: true); // SIGKILL: no chance to clean up
            p.WaitForExit();
        }
        int before;
        using (var store = new SqliteVectorStore(db)) before = store.Entries().Count;
        Assert.InRange(before, 30, total - 1);

        var r = CliRunner.Run("index", folder, "--model", Fixtures.Dir("tiny-itm"), "--db", db, "--batch-size", "50");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains($"{total - before} added, 0 updated, {before} unchanged, 0 removed", r.Stdout);
        using var final = new SqliteVectorStore(db);
        Assert.Equal(total, final.Entries().Count);
        var (paths, embeds) = final.LoadAll();
        Assert.Equal(total, paths.Distinct().Count());
        Assert.Equal(total, embeds.shape[0]);
    }

    [Fact]
    public void SearchCommandPrintsJson()
    {
        string folder = MakeFolder(4, withCorrupt: false);
        string db = Path.Combine(Fixtures.TempDir(), "i.db");
        Assert.Equal(0, CliRunner.Run("index", folder, "--model", Fixtures.Dir("tiny-itm"), "--db", db).ExitCode);
        var r = CliRunner.Run("search", "a blue square", "--db", db, "--model", Fixtures.Dir("tiny-itm"), "--top", "3", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var results = JsonNode.Parse(r.Stdout)!["results"]!.AsArray();
        Assert.Equal(3, results.Count);
        Assert.All(results, x => Assert.True(File.Exists((string)x!["path"]!)));
        var img = CliRunner.Run("search", "--image", Path.Combine(folder, "a", "img000.png"), "--db", db, "--model", Fixtures.Dir("tiny-itm"), "--json");
        Assert.EndsWith("img000.png", (string)JsonNode.Parse(img.Stdout)!["results"]![0]!["path"]!); // an image is its own best match
    }
}
