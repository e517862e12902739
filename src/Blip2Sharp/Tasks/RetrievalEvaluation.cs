using System.Text.Json.Nodes;
using Blip2Sharp.Configuration;
using static TorchSharp.torch;

namespace Blip2Sharp.Tasks;

/// <summary>Recall@1/5/10 in both directions, as fractions (LAVIS's txt_r* = image→text, img_r* = text→image).</summary>
public sealed record RetrievalMetrics(double I2tR1, double I2tR5, double I2tR10, double T2iR1, double T2iR5, double T2iR10, int Images, int Texts);

/// <summary>
/// Zero-shot retrieval evaluation as LAVIS computes it: ITC similarity of every image with every text; for each
/// query its top-k candidates by ITC are re-scored with ITM (score = ITM match logit + ITC), the rest keep −100;
/// Recall@K counts queries whose ground truth ranks in the top K.
/// </summary>
public static class RetrievalEvaluation
{
    public sealed record Dataset(List<string> Images, List<string> Texts, int[] TextToImage, List<int>[] ImageToTexts);

    /// <summary>
    /// JSONL of {"image": path, "caption": text or [texts]} ("captions" also read), paths relative to the file: one
    /// line per image, or one line per caption (as `blip2 demo data` and the trainer's data write them). Lines naming
    /// the same image are one image with all their captions, in the order first seen.
    /// </summary>
    public static Dataset Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: file not found.", path);
        string dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var images = new List<string>();
        var texts = new List<string>();
        var t2i = new List<int>();
        var i2t = new List<List<int>>();
        var indexOf = new Dictionary<string, int>(StringComparer.Ordinal);
        int lineNo = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNo++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            JsonObject o;
            try
            {
                o = JsonNode.Parse(line) as JsonObject ?? throw new InvalidConfigException("not an object");
            }
            catch (Exception e) when (e is System.Text.Json.JsonException or InvalidConfigException)
            {
                throw new InvalidConfigException($"{path}:{lineNo}: not a JSON object ({e.Message}).");
            }
            string image = o["image"]?.GetValue<string>() ?? throw new InvalidConfigException($"{path}:{lineNo}: no \"image\".");
            var captions = (o["caption"] ?? o["captions"]) switch
            {
                JsonArray a => a.Select(x => x!.GetValue<string>()).ToList(),
                JsonValue v => [v.GetValue<string>()],
                _ => throw new InvalidConfigException($"{path}:{lineNo}: no \"caption\" (a text or a list of texts)."),
            };
            if (captions.Count == 0 || captions.Any(string.IsNullOrWhiteSpace)) throw new InvalidConfigException($"{path}:{lineNo}: an empty caption.");
            string full = Path.GetFullPath(Path.IsPathRooted(image) ? image : Path.Combine(dir, image));
            if (!indexOf.TryGetValue(full, out int index))
            {
                indexOf[full] = index = images.Count;
                images.Add(full);
                i2t.Add([]);
            }
            foreach (var c in captions)
            {
                i2t[index].Add(texts.Count);
                t2i.Add(index);
                texts.Add(c);
            }
        }
        if (images.Count == 0) throw new InvalidConfigException($"{path}: no images.");
        return new Dataset(images, texts, [.. t2i], [.. i2t]);
    }

    /// <summary>Recall@K from a score matrix [queries, candidates]: the best-ranked ground truth of each query.</summary>
    public static (double R1, double R5, double R10) Recall(float[,] scores, Func<int, IEnumerable<int>> truth)
    {
        int n = scores.GetLength(0), m = scores.GetLength(1);
        int r1 = 0, r5 = 0, r10 = 0;
        for (int q = 0; q < n; q++)
        {
            // Rank = how many candidates score strictly higher than the best ground truth.
            float best = truth(q).Max(t => scores[q, t]);
            int rank = 0;
            for (int c = 0; c < m; c++) if (scores[q, c] > best) rank++;
            if (rank < 1) r1++;
            if (rank < 5) r5++;
            if (rank < 10) r10++;
        }
        return ((double)r1 / n, (double)r5 / n, (double)r10 / n);
    }

    public static RetrievalMetrics Evaluate(Blip2Retriever retriever, Dataset data, int kTest = 128, int batchSize = 16,
        Action<string, int, int>? progress = null, CancellationToken ct = default)
    {
        int ni = data.Images.Count, nt = data.Texts.Count;
        var vision = new List<Tensor>();
        var embeds = new List<Tensor>();
        for (int start = 0; start < ni; start += batchSize)
        {
            ct.ThrowIfCancellationRequested();
            var f = retriever.EncodeImages(data.Images.Skip(start).Take(batchSize).ToList());
            vision.Add(f.VisionHidden);
            embeds.Add(f.Embeds);
            progress?.Invoke("images", Math.Min(start + batchSize, ni), ni);
        }
        using var images = new ImageFeatures(cat(vision, 0), cat(embeds, 0));
        foreach (var t in vision.Concat(embeds)) t.Dispose();
        using var texts = retriever.EncodeTexts(data.Texts);
        using var sim = Blip2Retriever.ItcMatrix(images.Embeds, texts.Embeds); // [I, T]
        var simArr = To2D(sim);

        var i2t = Fill(ni, nt, -100f);
        int k = Math.Min(kTest, nt);
        for (int i = 0; i < ni; i++)
        {
            ct.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            var top = sim[i].topk(k).indexes;                                              // [k]
            var candVision = images.VisionHidden[i].unsqueeze(0).expand(k, -1, -1);
            using var itm = retriever.Model.Itm(candVision, texts.InputIds.index_select(0, top), texts.AttentionMask.index_select(0, top));
            var logits = itm.LogitsPerImage[.., 1].data<float>().ToArray();
            var idx = top.data<long>().ToArray();
            for (int j = 0; j < k; j++) i2t[i, idx[j]] = logits[j] + simArr[i, idx[j]];
            progress?.Invoke("image→text", i + 1, ni);
        }
        var t2i = Fill(nt, ni, -100f);
        int kt = Math.Min(kTest, ni);
        for (int t = 0; t < nt; t++)
        {
            ct.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            var top = sim[.., t].topk(kt).indexes;
            var ids = texts.InputIds[t].unsqueeze(0).expand(kt, -1);
            var mask = texts.AttentionMask[t].unsqueeze(0).expand(kt, -1);
            using var itm = retriever.Model.Itm(images.VisionHidden.index_select(0, top), ids, mask);
            var logits = itm.LogitsPerImage[.., 1].data<float>().ToArray();
            var idx = top.data<long>().ToArray();
            for (int j = 0; j < kt; j++) t2i[t, idx[j]] = logits[j] + simArr[idx[j], t];
            progress?.Invoke("text→image", t + 1, nt);
        }
        var (a1, a5, a10) = Recall(i2t, i => data.ImageToTexts[i]);
        var (b1, b5, b10) = Recall(t2i, t => [data.TextToImage[t]]);
        return new RetrievalMetrics(a1, a5, a10, b1, b5, b10, ni, nt);
    }

    private static float[,] Fill(int n, int m, float v)
    {
        var a = new float[n, m];
        for (int i = 0; i < n; i++) for (int j = 0; j < m; j++) a[i, j] = v;
        return a;
    }

    private static float[,] To2D(Tensor t)
    {
        int n = (int)t.shape[0], m = (int)t.shape[1];
        var flat = t.contiguous().data<float>().ToArray();
        var a = new float[n, m];
        Buffer.BlockCopy(flat, 0, a, 0, flat.Length * sizeof(float));
        return a;
    }
}
