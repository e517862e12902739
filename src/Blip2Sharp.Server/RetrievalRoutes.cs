using System.Security.Cryptography;
using System.Text.Json;
using Blip2Sharp.Processing;
using Blip2Sharp.Tasks;
using static TorchSharp.torch;

namespace Blip2Sharp.Server;

/// <summary>The retrieval model's routes: embeddings, match, search, index, and the indexed images
/// themselves.</summary>
public static class RetrievalRoutes
{
    public static async Task<EmbeddingsResponse> Embeddings(HttpContext http, ServedModels models, ImageInput images)
    {
        var ct = http.RequestAborted;
        var r = await Wire.ReadAsync<EmbeddingsRequest>(http.Request, ct);
        var retriever = models.Retriever;
        string modelId = models.Options.RetrievalId!;
        models.RequireModel(r.Model, modelId);
        var inputs = Inputs(r.Input);
        bool base64 = r.EncodingFormat switch
        {
            null or "float" => false,
            "base64" => true,
            _ => throw ApiException.BadRequest($"encoding_format '{r.EncodingFormat}' is not supported: use float or base64.", "encoding_format"),
        };
        var decoded = new Dictionary<int, RgbImage>();
        for (int i = 0; i < inputs.Count; i++)
            if (IsImage(inputs[i])) decoded[i] = await images.DecodeAsync(inputs[i], $"input[{i}]", ct);
        var texts = Enumerable.Range(0, inputs.Count).Where(i => !decoded.ContainsKey(i)).ToList();
        if (texts.Any(i => string.IsNullOrWhiteSpace(inputs[i])))
            throw ApiException.BadRequest("an input text is empty.",
                $"input[{texts.First(i => string.IsNullOrWhiteSpace(inputs[i]))}]");

        var items = new EmbeddingItem[inputs.Count];
        int tokens = 0;
        await models.RetrievalGate.WaitAsync(ct);
        try
        {
            using var scope = NewDisposeScope();
            if (texts.Count > 0)
            {
                using var t = retriever.EncodeTexts([.. texts.Select(i => inputs[i])]);
                tokens = (int)t.AttentionMask.sum().item<long>();
                for (int k = 0; k < texts.Count; k++)
                    items[texts[k]] = Item(texts[k], t.Embeds[k].data<float>().ToArray(), [(int)t.Embeds.shape[1]],
                        "text", base64);
            }
            if (decoded.Count > 0)
            {
                var order = decoded.Keys.Order().ToList();
                using var f = retriever.EncodePixels(retriever.ImageProcessor.Preprocess([.. order.Select(i
                    => decoded[i])]));
                for (int k = 0; k < order.Count; k++)
                    items[order[k]] = Item(order[k], f.Embeds[k].contiguous().data<float>().ToArray(),
                        [(int)f.Embeds.shape[1], (int)f.Embeds.shape[2]], "image", base64);
            }
        }
        finally
        {
            models.RetrievalGate.Release();
        }
        return new EmbeddingsResponse("list", [.. items], modelId, new EmbeddingsUsage(tokens, tokens));
    }

    private static EmbeddingItem Item(int index, float[] values, int[] shape, string modality, bool base64)
    {
        object embedding = base64
            ? Convert.ToBase64String(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan())) : values;
        return new EmbeddingItem("embedding", index, embedding, shape, modality);
    }

    private static bool IsImage(string input) => input.StartsWith("data:image/", StringComparison.OrdinalIgnoreCase);

    private static List<string> Inputs(JsonElement? input)
    {
        if (input is { ValueKind: JsonValueKind.String } s) return [s.GetString()!];
        if (input is { ValueKind: JsonValueKind.Array } a && a.GetArrayLength() > 0 && a.EnumerateArray()
            .All(x => x.ValueKind == JsonValueKind.String))
            return [.. a.EnumerateArray().Select(x => x.GetString()!)];
        throw ApiException.BadRequest("input must be a string or a non-empty list of strings (texts, or image data URLs).", "input");
    }

    public static async Task<MatchResponse> Match(HttpContext http, ServedModels models, ImageInput images)
    {
        var ct = http.RequestAborted;
        var r = await Wire.ReadAsync<MatchRequest>(http.Request, ct);
        var retriever = models.Retriever;
        models.RequireModel(r.Model, models.Options.RetrievalId!);
        if (r.Image is null) throw ApiException.BadRequest("image is missing: send the image as a data URL.", "image");
        if (r.Texts is not { Count: > 0 } texts || texts.Any(string.IsNullOrWhiteSpace))
            throw ApiException.BadRequest("texts must be a non-empty list of non-empty strings.", "texts");
        var image = await images.DecodeAsync(r.Image, "image", ct);
        await models.RetrievalGate.WaitAsync(ct);
        try
        {
            using var scope = NewDisposeScope();
            using var f = retriever.EncodePixels(retriever.ImageProcessor.Preprocess([image]));
            using var t = retriever.EncodeTexts(texts);
            var itm = retriever.ItmProbabilities(f, t)[0].data<float>().ToArray();
            var itc = Blip2Retriever.ItcMatrix(f.Embeds, t.Embeds)[0].contiguous().data<float>().ToArray();
            return new MatchResponse("list", models.Options.RetrievalId!,
                [.. texts.Select((x, j) => new MatchResult(x, itm[j], itc[j]))]);
        }
        finally
        {
            models.RetrievalGate.Release();
        }
    }

    public static async Task<SearchResponse> Search(HttpContext http, ServedModels models, ImageInput images)
    {
        var ct = http.RequestAborted;
        var r = await Wire.ReadAsync<SearchRequest>(http.Request, ct);
        var retriever = models.Retriever;
        var store = models.Store;
        models.RequireModel(r.Model, models.Options.RetrievalId!);
        int top = r.Top ?? 10;
        int rerank = r.Rerank ?? 128;
        if (top is < 1 or > 1000) throw ApiException.BadRequest($"top must be between 1 and 1000 (got {top}).", "top");
        if (rerank is < 0 or > 1000) throw ApiException.BadRequest($"rerank must be between 0 and 1000 (got {rerank}).", "rerank");
        if ((r.Query is null) == (r.Image is null))
            throw ApiException.BadRequest("give either query (a text) or image (a data URL).", r.Query is null
                ? "query" : "image");
        if (r.Query is { } q && string.IsNullOrWhiteSpace(q)) throw ApiException.BadRequest("query is empty.", "query");
        var image = r.Image is null ? null : await images.DecodeAsync(r.Image, "image", ct);
        await models.RetrievalGate.WaitAsync(ct);
        try
        {
            if (store.Fingerprint is null) return new SearchResponse("list", models.Options.RetrievalId!, []);
            string root = ImageIndex.RootOf(store);
            var hits = image is null
                ? ImageIndex.SearchText(retriever, store, r.Query!, top, rerank)
                : ImageIndex.SearchImage(retriever, store, image, top);
            return new SearchResponse("list", models.Options.RetrievalId!,
                [.. hits.Select(h
                    => new SearchResult(h.Path, Path.Combine(root, h.Path), ImageUrl(h.Path), h.Score, h.Itc,
                    h.ItmLogit))]);
        }
        finally
        {
            models.RetrievalGate.Release();
        }
    }

    private static string ImageUrl(string id) => "/v1/images/"
        + string.Join('/', id.Split('/').Select(Uri.EscapeDataString));

    public static async Task<IndexResponse> Index(HttpContext http, ServedModels models, ImageInput images)
    {
        var ct = http.RequestAborted;
        var r = await Wire.ReadAsync<IndexRequest>(http.Request, ct);
        var retriever = models.Retriever;
        var store = models.Store;
        models.RequireModel(r.Model, models.Options.RetrievalId!);
        if (r.Images is not { Count: > 0 } urls) throw ApiException.BadRequest("images must be a non-empty list of data URLs.", "images");
        var decoded = new List<(byte[] Png, RgbImage Image)>();
        for (int i = 0; i < urls.Count; i++)
        {
            var image = await images.DecodeAsync(urls[i], $"images[{i}]", ct);
            decoded.Add((image.ToPng(), image));
        }
        await models.RetrievalGate.WaitAsync(CancellationToken.None);   // once started, an index call completes
        try
        {
            string root = models.IndexRoot;
            string folder = Path.Combine(root, "uploads");
            Directory.CreateDirectory(folder);
            var entries = new List<(StoredImage, RgbImage)>();
            foreach (var (png, image) in decoded)
            {
                string hash = Convert.ToHexString(SHA256.HashData(png))[..32].ToLowerInvariant();
                string id = $"uploads/{hash}.png";
                string path = Path.Combine(root, id);
                if (!File.Exists(path))
                {
                    // Written under a temporary name, flushed to disk, then renamed: a crash never leaves half a file.
                    string temp = path + ".tmp";
                    using (var f = new FileStream(temp, FileMode.Create, FileAccess.Write))
                    {
                        f.Write(png);
                        f.Flush(flushToDisk: true);
                    }
                    File.Move(temp, path, overwrite: true);
                }
                entries.Add((new StoredImage(id, hash), image));
            }
            ImageIndex.Add(retriever, store, root, entries);
            return new IndexResponse("list",
                [.. entries.Select(e
                => new IndexedImage(e.Item1.Path, Path.Combine(root, e.Item1.Path), ImageUrl(e.Item1.Path)))],
                store.Entries().Count);
        }
        finally
        {
            models.RetrievalGate.Release();
        }
    }

    /// <summary>GET /v1/images/{id}: an indexed image's file (for thumbnails); only files inside the indexed
    /// folder.</summary>
    public static IResult Image(string id, ServedModels models)
    {
        var store = models.Store;
        if (store.Fingerprint is null) throw new ApiException(404, "the index is empty.", code: "not_found");
        string root = Path.GetFullPath(ImageIndex.RootOf(store));
        string path = Path.GetFullPath(Path.Combine(root, id));
        if (!path.StartsWith(root + Path.DirectorySeparatorChar, StringComparison.Ordinal) || !store.Entries()
            .ContainsKey(id) || !File.Exists(path))
            throw new ApiException(404, $"no indexed image '{id}'.", param: "id", code: "not_found");
        string type = Path.GetExtension(path).ToLowerInvariant() switch
        {
            ".jpg" or ".jpeg" => "image/jpeg",
            ".webp" => "image/webp",
            ".gif" => "image/gif",
            ".bmp" => "image/bmp",
            _ => "image/png",
        };
        return Results.File(path, type);
    }
}
