using System.Security.Cryptography;
using Blip2Sharp.Processing;
using static TorchSharp.torch;

namespace Blip2Sharp.Tasks;

public sealed record IndexReport(int Added, int Updated, int Unchanged, int Removed, IReadOnlyList<(string Path, string Error)> Failed, bool Cancelled);

public sealed record SearchHit(string Path, double Itc, double? ItmLogit, double Score);

/// <summary>
/// An image collection indexed for retrieval: incremental (files hashed; unchanged ones skipped, changed ones
/// re-embedded, deleted ones removed), batch by batch with a commit after each, and searchable by text (ITC over
/// every stored embedding at once, then the top candidates re-ranked by ITM as the paper does) or by image.
/// </summary>
public static class ImageIndex
{
    public const string RootKey = "root";

    public static string Hash(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexString(SHA256.HashData(stream))[..32].ToLowerInvariant();
    }

    public static IndexReport Build(Blip2Retriever retriever, IVectorStore store, string folder, int batchSize = 16,
        Action<int, int>? progress = null, Action<string, string>? onFailure = null, CancellationToken ct = default)
    {
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"{folder}: folder not found.");
        string fingerprint = $"{retriever.Fingerprint};root={Path.GetFullPath(folder)}";
        if (store.Fingerprint is { } existing && existing != fingerprint)
            throw new Blip2Exception($"this index was built with another model, preprocessing or folder ({Describe(existing)}); it does not mix vectors: use a new --db file.");
        store.SetFingerprint(fingerprint);

        var files = Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
            .Where(IsImage).Select(f => Path.GetRelativePath(folder, f).Replace('\\', '/')).Order(StringComparer.Ordinal).ToList();
        var stored = store.Entries();
        var removals = stored.Keys.Except(files).ToList();
        if (removals.Count > 0) store.Commit([], null, removals);

        var todo = new List<StoredImage>();
        int unchanged = 0, added = 0, updated = 0;
        foreach (var f in files)
        {
            string hash = Hash(Path.Combine(folder, f));
            if (stored.TryGetValue(f, out var s) && s.Hash == hash) unchanged++;
            else todo.Add(new StoredImage(f, hash));
        }
        var failed = new List<(string, string)>();
        int done = 0;
        progress?.Invoke(0, todo.Count);
        foreach (var batch in todo.Chunk(Math.Max(1, batchSize)))
        {
            if (ct.IsCancellationRequested) return new IndexReport(added, updated, unchanged, removals.Count, failed, true);
            var ok = new List<StoredImage>();
            var decoded = new List<RgbImage>();
            foreach (var item in batch)
            {
                try
                {
                    decoded.Add(ImageDecoder.DecodeFile(Path.Combine(folder, item.Path), retriever.ImageProcessor.DecodeOptions));
                    ok.Add(item);
                }
                catch (Exception e) when (e is Blip2Exception or IOException)
                {
                    failed.Add((item.Path, e.Message));
                    onFailure?.Invoke(item.Path, e.Message);
                }
            }
            if (ok.Count > 0)
            {
                using var scope = NewDisposeScope();
                using var features = retriever.EncodePixels(retriever.ImageProcessor.Preprocess(decoded));
                store.Commit(ok, features.Embeds, []);
                foreach (var item in ok)
                {
                    if (stored.ContainsKey(item.Path)) updated++;
                    else added++;
                }
            }
            done += batch.Length;
            progress?.Invoke(done, todo.Count);
        }
        return new IndexReport(added, updated, unchanged, removals.Count, failed, false);
    }

    /// <summary>
    /// Adds images already in the indexed folder <paramref name="root"/> (paths relative to it, decoded) in one
    /// commit: durable when this returns. An empty index takes <paramref name="root"/> as its folder; one built from
    /// another folder or model is refused, as <see cref="Build"/> refuses it.
    /// </summary>
    public static void Add(Blip2Retriever retriever, IVectorStore store, string root, IReadOnlyList<(StoredImage Entry, RgbImage Image)> images)
    {
        string fingerprint = $"{retriever.Fingerprint};root={Path.GetFullPath(root)}";
        if (store.Fingerprint is { } existing && existing != fingerprint)
            throw new Blip2Exception($"this index was built with another model, preprocessing or folder ({Describe(existing)}); it does not mix vectors: use a new --db file.");
        if (images.Count == 0) return;
        store.SetFingerprint(fingerprint);
        using var scope = NewDisposeScope();
        using var features = retriever.EncodePixels(retriever.ImageProcessor.Preprocess([.. images.Select(i => i.Image)]));
        store.Commit([.. images.Select(i => i.Entry)], features.Embeds, []);
    }

    private static string Describe(string fingerprint) =>
        string.Join(", ", fingerprint.Split(';').Where(p => p.StartsWith("size=") || p.StartsWith("root=")));

    public static bool IsImage(string path) =>
        new[] { ".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp" }.Contains(Path.GetExtension(path).ToLowerInvariant());

    public static string RootOf(IVectorStore store) =>
        store.Fingerprint?.Split(';').FirstOrDefault(p => p.StartsWith("root="))?["root=".Length..]
        ?? throw new Blip2Exception("the index is empty: run `blip2 index FOLDER` first.");

    /// <summary>
    /// ITC scores [N] of one query embedding [D] against every stored embedding [N, Q, D]: max over queries. Both
    /// sides are unit vectors, so a score is a cosine; the float16 storage can round one a little past ±1, which is
    /// clamped back.
    /// </summary>
    public static Tensor ItcScores(Tensor stored, Tensor query)
    {
        using var scope = NewDisposeScope();
        long n = stored.shape[0], q = stored.shape[1], d = stored.shape[2];
        var sims = stored.view(n * q, d).matmul(query);  // [N·Q]: one pass over every stored vector
        return sims.view(n, q).amax([1]).clamp(-1, 1).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Text search: ITC ranking over the whole collection, then the best <paramref name="rerank"/> re-ranked by
    /// ITM (score = ITM match logit + ITC, as LAVIS computes it); rerank 0 keeps the ITC order.
    /// </summary>
    public static List<SearchHit> SearchText(Blip2Retriever retriever, IVectorStore store, string text, int top, int rerank)
    {
        var (paths, stored) = store.LoadAll();
        using var _ = stored;
        if (paths.Count == 0) return [];
        using var textFeatures = retriever.EncodeTexts([text]);
        using var scores = ItcScores(stored, textFeatures.Embeds[0]);
        int k = Math.Min(paths.Count, Math.Max(top, rerank));
        var (values, indices) = scores.topk(k);
        var itc = values.data<float>().ToArray();
        var idx = indices.data<long>().ToArray();
        var hits = idx.Select((i, j) => new SearchHit(paths[(int)i], itc[j], null, itc[j])).ToList();
        if (rerank <= 0) return hits.Take(top).ToList();

        string root = RootOf(store);
        var candidates = hits.Take(rerank).ToList();
        var reranked = new List<SearchHit>();
        foreach (var chunk in candidates.Chunk(16))
        {
            var readable = chunk.Where(h => File.Exists(Path.Combine(root, h.Path))).ToList();
            if (readable.Count == 0) continue;
            using var scope = NewDisposeScope();
            using var images = retriever.EncodeImages(readable.Select(h => Path.Combine(root, h.Path)).ToList());
            var logits = retriever.ItmLogits(images, textFeatures);                 // [I, 1, 2]
            var match = logits[.., 0, 1].data<float>().ToArray();
            reranked.AddRange(readable.Select((h, i) => h with { ItmLogit = match[i], Score = match[i] + h.Itc }));
        }
        return reranked.OrderByDescending(h => h.Score).Concat(hits.Skip(rerank)).Take(top).ToList();
    }

    /// <summary>
    /// Image search: the stored images most similar to a query image (max over query pairs of the cosines, clamped to
    /// ±1 as in <see cref="ItcScores"/>). No ITM re-ranking: ITM scores an image against a text.
    /// </summary>
    public static List<SearchHit> SearchImage(Blip2Retriever retriever, IVectorStore store, string imagePath, int top) =>
        SearchImage(retriever, store, ImageDecoder.DecodeFile(imagePath, retriever.ImageProcessor.DecodeOptions), top);

    /// <summary>Image search with an image already decoded (an upload).</summary>
    public static List<SearchHit> SearchImage(Blip2Retriever retriever, IVectorStore store, RgbImage image, int top)
    {
        var (paths, stored) = store.LoadAll();
        using var _ = stored;
        if (paths.Count == 0) return [];
        using var pixels = retriever.ImageProcessor.Preprocess([image]);
        using var query = retriever.EncodePixels(pixels);
        using var scope = NewDisposeScope();
        long n = stored.shape[0], q = stored.shape[1], d = stored.shape[2];
        var sims = stored.view(n * q, d).matmul(query.Embeds[0].t());              // [N·Q, Q']
        var scores = sims.view(n, -1).amax([1]).clamp(-1, 1);                       // [N]
        var (values, indices) = scores.topk(Math.Min(top, paths.Count));
        var v = values.data<float>().ToArray();
        return indices.data<long>().ToArray().Select((i, j) => new SearchHit(paths[(int)i], v[j], null, v[j])).ToList();
    }
}
