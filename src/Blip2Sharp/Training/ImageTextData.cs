using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Blip2Sharp.Processing;

namespace Blip2Sharp.Training;

/// <summary>One image-text pair (the image path resolved against the data file's folder).</summary>
public sealed record ImageTextPair(string Image, string Caption);

/// <summary>
/// Image-text pairs from JSONL ({"image": path, "caption": text}, several lines per image allowed) or CSV
/// (header with image and caption columns), captions cleaned as LAVIS does, images decoded and augmented in
/// parallel: random resized crop (scale 0.5–1) and horizontal flip for training, a plain resize otherwise.
/// </summary>
public sealed partial class ImageTextData
{
    public IReadOnlyList<ImageTextPair> Pairs { get; }
    /// <summary>Lines whose caption was empty after cleaning: dropped, and counted here.</summary>
    public int EmptyCaptions { get; }

    private ImageTextData(List<ImageTextPair> pairs)
    {
        Pairs = pairs.Where(p => p.Caption.Length > 0).ToList();
        EmptyCaptions = pairs.Count - Pairs.Count;
    }

    public static ImageTextData Load(string path, int maxWords = 50)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: file not found.", path);
        string dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var pairs = new List<ImageTextPair>();
        string Resolve(string p) => Path.IsPathRooted(p) ? p : Path.Combine(dir, p);
        if (path.EndsWith(".csv", StringComparison.OrdinalIgnoreCase))
        {
            var lines = File.ReadAllLines(path);
            if (lines.Length == 0) throw new InvalidConfigException($"{path}: empty CSV.");
            var header = ParseCsvLine(lines[0]).Select(h => h.Trim().ToLowerInvariant()).ToList();
            int ii = header.IndexOf("image"), ci = header.IndexOf("caption");
            if (ii < 0 || ci < 0) throw new InvalidConfigException($"{path}: the CSV header needs 'image' and 'caption' columns.");
            for (int n = 1; n < lines.Length; n++)
            {
                if (string.IsNullOrWhiteSpace(lines[n])) continue;
                var f = ParseCsvLine(lines[n]);
                if (f.Count <= Math.Max(ii, ci)) throw new InvalidConfigException($"{path}:{n + 1}: missing columns.");
                pairs.Add(new ImageTextPair(Resolve(f[ii]), CleanCaption(f[ci], maxWords)));
            }
        }
        else
        {
            int n = 0;
            foreach (var line in File.ReadLines(path))
            {
                n++;
                if (string.IsNullOrWhiteSpace(line)) continue;
                JsonObject o;
                try { o = JsonNode.Parse(line) as JsonObject ?? throw new FormatException(); }
                catch (Exception e) when (e is System.Text.Json.JsonException or FormatException)
                {
                    throw new InvalidConfigException($"{path}:{n}: not a JSON object.");
                }
                string image = o["image"]?.GetValue<string>() ?? throw new InvalidConfigException($"{path}:{n}: no \"image\".");
                string caption = o["caption"]?.GetValue<string>() ?? throw new InvalidConfigException($"{path}:{n}: no \"caption\".");
                pairs.Add(new ImageTextPair(Resolve(image), CleanCaption(caption, maxWords)));
            }
        }
        return new ImageTextData(pairs);
    }

    private static List<string> ParseCsvLine(string line)
    {
        var fields = new List<string>();
        var sb = new StringBuilder();
        bool quoted = false;
        for (int i = 0; i < line.Length; i++)
        {
            char c = line[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < line.Length && line[i + 1] == '"') { sb.Append('"'); i++; }
                else if (c == '"') quoted = false;
                else sb.Append(c);
            }
            else if (c == '"') quoted = true;
            else if (c == ',') { fields.Add(sb.ToString()); sb.Clear(); }
            else sb.Append(c);
        }
        fields.Add(sb.ToString());
        return fields;
    }

    [GeneratedRegex(@"[.!""()*#:;~]")]
    private static partial Regex Punctuation();

    [GeneratedRegex(@"\s{2,}")]
    private static partial Regex Spaces();

    /// <summary>LAVIS's pre_caption: lower case, . ! " ( ) * # : ; ~ become spaces, runs of spaces collapse, at most maxWords words.</summary>
    public static string CleanCaption(string caption, int maxWords)
    {
        string c = Spaces().Replace(Punctuation().Replace(caption.ToLowerInvariant(), " "), " ").TrimEnd('\n').Trim();
        var words = c.Split(' ');
        return words.Length > maxWords ? string.Join(' ', words.Take(maxWords)) : c;
    }

    /// <summary>The order of pairs in an epoch: a permutation fixed by the seed and the epoch.</summary>
    public int[] Order(long seed, int epoch)
    {
        var rng = new Random(Seeds.Mix(seed, epoch));
        var order = Enumerable.Range(0, Pairs.Count).ToArray();
        rng.Shuffle(order);
        return order;
    }

    /// <summary>
    /// Decodes and augments images in parallel; unreadable ones are returned as null (the caller skips and counts them).
    /// Each image's randomness comes from (seed, step, slot), so a resumed run sees the same crops.
    /// </summary>
    public static RgbImage?[] LoadImages(IReadOnlyList<string> paths, BlipImageProcessor processor, bool augment, long seed, int step)
    {
        var result = new RgbImage?[paths.Count];
        Parallel.For(0, paths.Count, i =>
        {
            try
            {
                var img = ImageDecoder.DecodeFile(paths[i], processor.DecodeOptions);
                result[i] = augment ? RandomResizedCropFlip(img, processor.Config.Size.Width, processor.Config.Size.Height, new Random(Seeds.Mix(seed, step, i)))
                    : processor.Resize(img);
            }
            catch (Exception e) when (e is Blip2Exception or IOException)
            {
                result[i] = null;
            }
        });
        return result;
    }

    /// <summary>torchvision's RandomResizedCrop (scale 0.5–1, ratio 3/4–4/3, bicubic) followed by a horizontal flip half the time.</summary>
    public static RgbImage RandomResizedCropFlip(RgbImage img, int outW, int outH, Random rng, double minScale = 0.5)
    {
        int w = img.Width, h = img.Height;
        int cw = w, ch = h, x0 = 0, y0 = 0;
        for (int attempt = 0; attempt < 10; attempt++)
        {
            double area = w * h * (minScale + rng.NextDouble() * (1 - minScale));
            double logRatio = Math.Log(3.0 / 4) + rng.NextDouble() * (Math.Log(4.0 / 3) - Math.Log(3.0 / 4));
            double ratio = Math.Exp(logRatio);
            int tw = (int)Math.Round(Math.Sqrt(area * ratio)), th = (int)Math.Round(Math.Sqrt(area / ratio));
            if (tw > 0 && th > 0 && tw <= w && th <= h)
            {
                cw = tw; ch = th;
                x0 = rng.Next(0, w - tw + 1);
                y0 = rng.Next(0, h - th + 1);
                break;
            }
        }
        bool flip = rng.NextDouble() < 0.5;
        var crop = new byte[cw * ch * 3];
        for (int y = 0; y < ch; y++)
        {
            for (int x = 0; x < cw; x++)
            {
                int sx = x0 + (flip ? cw - 1 - x : x);
                Array.Copy(img.Pixels, ((y0 + y) * w + sx) * 3, crop, (y * cw + x) * 3, 3);
            }
        }
        return PilBicubic.Resize(new RgbImage(cw, ch, crop), outW, outH);
    }
}
