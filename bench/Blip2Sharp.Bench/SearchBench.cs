using System.Diagnostics;
using Blip2Sharp.Tasks;
using static TorchSharp.torch;

namespace Blip2Sharp.Bench;

/// <summary>The ITC stage of `blip2 search` over a large store: the store is filled with random unit vectors once.</summary>
public static class SearchBench
{
    public static void Run(int n, string dbPath)
    {
        const int q = 32, d = 256;
        set_num_threads(Environment.ProcessorCount);
        var sw = Stopwatch.StartNew();
        using (var store = new SqliteVectorStore(dbPath))
        {
            if (store.Entries().Count != n)
            {
                var gen = new Generator(7);
                for (int start = 0; start < n; start += 1000)
                {
                    int b = Math.Min(1000, n - start);
                    using var scope = NewDisposeScope();
                    var v = nn.functional.normalize(randn([b, q, d], generator: gen), dim: -1);
                    store.Commit([.. Enumerable.Range(start, b).Select(i => new StoredImage($"img{i:D7}.jpg", "0"))], v, []);
                }
                store.SetFingerprint("bench");
            }
        }
        double fillS = sw.Elapsed.TotalSeconds;
        using var s = new SqliteVectorStore(dbPath);
        sw.Restart();
        var (paths, embeds) = s.LoadAll();
        double loadS = sw.Elapsed.TotalSeconds;
        var query = nn.functional.normalize(randn(d), dim: 0);
        var times = new List<double>();
        for (int rep = 0; rep < 7; rep++)
        {
            sw.Restart();
            using (inference_mode())
            {
                using var scores = ImageIndex.ItcScores(embeds, query);
                var (values, idx) = scores.topk(128);
                values.Dispose();
                idx.Dispose();
            }
            times.Add(sw.Elapsed.TotalMilliseconds);
        }
        times.Sort();
        long dbBytes = new FileInfo(dbPath).Length + (File.Exists(dbPath + "-wal") ? new FileInfo(dbPath + "-wal").Length : 0);
        Console.WriteLine($"{{\"images\": {paths.Count}, \"vector_gb_fp32_in_memory\": {embeds.NumberOfElements * 4 / 1e9:F2}, \"db_size_gb\": {dbBytes / 1e9:F2}, " +
            $"\"fill_s\": {fillS:F1}, \"load_s\": {loadS:F1}, \"itc_top128_ms_median\": {times[times.Count / 2]:F1}, \"itc_top128_ms_min\": {times[0]:F1}, \"itc_top128_ms_all\": [{string.Join(", ", times.Select(t => t.ToString("F1")))}]}}");
    }
}
