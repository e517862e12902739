using SkiaSharp;

namespace Blip2Sharp.Demo;

/// <summary>A PNG grid of scenes, each shown with lines of text under it (generated captions, answers).</summary>
public static class DemoGrid
{
    public sealed record Tile(byte[] Png, IReadOnlyList<string> Lines);

    /// <summary>
    /// A scene's tile: its caption, then each question with the model's answer, each marked right or wrong (in words:
    /// the default typeface here has no glyphs for ✓ and ✗).
    /// </summary>
    public static Tile Scene(byte[] png, string caption, bool captionCorrect, IEnumerable<(string Question, string Answer, string Expected, bool Correct)> answers) =>
        new(png, [$"{caption} ({(captionCorrect ? "right" : "wrong")})", .. answers.Select(a => $"Q: {a.Question} A: {a.Answer} ({(a.Correct ? "right" : "wrong: " + a.Expected)})")]);

    public static void Write(string path, IReadOnlyList<Tile> tiles, int columns = 4, int imageSize = 192, int tileWidth = 380)
    {
        using var font = new SKFont(SKTypeface.Default, 13);
        using var ink = new SKPaint { Color = SKColors.Black, IsAntialias = true };
        const int pad = 10, lineHeight = 16;
        // Lines wrap at the tile's width; the tallest tile sets the row height.
        var wrapped = tiles.Select(t => t.Lines.SelectMany(l => Wrap(l, font, tileWidth - 2 * pad)).ToList()).ToList();
        int textHeight = wrapped.Count == 0 ? 0 : wrapped.Max(w => w.Count) * lineHeight;
        int tileHeight = imageSize + textHeight + 3 * pad;
        int rows = (tiles.Count + columns - 1) / columns;
        using var surface = SKSurface.Create(new SKImageInfo(Math.Max(1, Math.Min(columns, tiles.Count)) * tileWidth, Math.Max(1, rows) * tileHeight));
        var canvas = surface.Canvas;
        canvas.Clear(SKColors.White);
        using var sampling = new SKPaint();
        for (int i = 0; i < tiles.Count; i++)
        {
            float x = i % columns * tileWidth, y = i / columns * tileHeight;
            using var image = SKImage.FromEncodedData(tiles[i].Png);
            // Nearest-neighbour upscaling keeps the small scenes' pixels visible as they are.
            canvas.DrawImage(image, SKRect.Create(x + (tileWidth - imageSize) / 2f, y + pad, imageSize, imageSize), new SKSamplingOptions(SKFilterMode.Nearest), sampling);
            for (int k = 0; k < wrapped[i].Count; k++)
                canvas.DrawText(wrapped[i][k], x + pad, y + imageSize + 2 * pad + (k + 1) * lineHeight - 4, font, ink);
        }
        using var snapshot = surface.Snapshot();
        using var data = snapshot.Encode(SKEncodedImageFormat.Png, 100);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        File.WriteAllBytes(path, data.ToArray());
    }

    private static IEnumerable<string> Wrap(string text, SKFont font, float width)
    {
        var line = "";
        foreach (var word in text.Split(' '))
        {
            string candidate = line.Length == 0 ? word : line + " " + word;
            if (line.Length > 0 && font.MeasureText(candidate) > width)
            {
                yield return line;
                line = word;
            }
            else line = candidate;
        }
        if (line.Length > 0) yield return line;
    }
}
