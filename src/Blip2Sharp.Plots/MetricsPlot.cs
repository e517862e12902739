using SkiaSharp;

namespace Blip2Sharp.Plots;

/// <summary>A plain line chart of training curves (one line per loss over steps), drawn with SkiaSharp.</summary>
public static class MetricsPlot
{
    private static readonly SKColor[] Colors = [new(31, 119, 180), new(255, 127, 14), new(44, 160, 44), new(214, 39, 40)];

    public static void Draw(string path, double[] steps, IReadOnlyList<(string Name, double[] Values)> series, int width = 900, int height = 500)
    {
        using var surface = SKSurface.Create(new SKImageInfo(width, height));
        var c = surface.Canvas;
        c.Clear(SKColors.White);
        const float left = 70, right = 20, top = 30, bottom = 50;
        double minX = steps.Min(), maxX = Math.Max(steps.Max(), minX + 1);
        var all = series.SelectMany(s => s.Values).Where(double.IsFinite).ToList();
        double minY = all.Count == 0 ? 0 : Math.Min(0, all.Min()), maxY = all.Count == 0 ? 1 : all.Max() * 1.05 + 1e-9;
        float X(double x) => left + (float)((x - minX) / (maxX - minX)) * (width - left - right);
        float Y(double y) => height - bottom - (float)((y - minY) / (maxY - minY)) * (height - top - bottom);
        using var axis = new SKPaint { Color = SKColors.Black, StrokeWidth = 1, IsAntialias = true };
        using var font = new SKFont(SKTypeface.Default, 14);
        using var text = new SKPaint { Color = SKColors.Black, IsAntialias = true };
        c.DrawLine(left, height - bottom, width - right, height - bottom, axis);
        c.DrawLine(left, top, left, height - bottom, axis);
        for (int i = 0; i <= 4; i++)
        {
            double y = minY + (maxY - minY) * i / 4;
            c.DrawText(y.ToString("0.###"), 5, Y(y) + 5, font, text);
            double x = minX + (maxX - minX) * i / 4;
            c.DrawText(((int)x).ToString(), X(x) - 10, height - bottom + 20, font, text);
        }
        c.DrawText("step", width / 2f, height - 10, font, text);
        for (int s = 0; s < series.Count; s++)
        {
            using var paint = new SKPaint { Color = Colors[s % Colors.Length], StrokeWidth = 2, IsAntialias = true, Style = SKPaintStyle.Stroke };
            using var pathLine = new SKPath();
            for (int i = 0; i < steps.Length; i++)
            {
                if (!double.IsFinite(series[s].Values[i])) continue;
                if (pathLine.IsEmpty) pathLine.MoveTo(X(steps[i]), Y(series[s].Values[i]));
                else pathLine.LineTo(X(steps[i]), Y(series[s].Values[i]));
            }
            c.DrawPath(pathLine, paint);
            using var legend = new SKPaint { Color = Colors[s % Colors.Length], IsAntialias = true };
            c.DrawText(series[s].Name, width - right - 120, top + 20 * (s + 1), font, legend);
        }
        using var image = surface.Snapshot();
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        string tmp = path + ".tmp";
        File.WriteAllBytes(tmp, data.ToArray());
        File.Move(tmp, path, true);
    }
}
