using System.Globalization;

namespace Blip2Sharp.Plots;

/// <summary>A trainer's metrics.csv (step, one column per loss, lr, pairs_per_second) drawn as a chart of its losses.</summary>
public static class MetricsChart
{
    public static void FromCsv(string csvPath, string pngPath)
    {
        var lines = File.ReadAllLines(csvPath);
        if (lines.Length < 2) return;
        var header = lines[0].Split(',');
        int losses = Array.IndexOf(header, "lr") is int lr and > 1 ? lr - 1 : header.Length - 1;
        var rows = lines.Skip(1).Where(l => l.Length > 0)
            .Select(l => l.Split(',').Select(x => double.Parse(x, CultureInfo.InvariantCulture)).ToArray()).ToList();
        MetricsPlot.Draw(pngPath, [.. rows.Select(r => r[0])],
            [.. Enumerable.Range(1, losses).Select(c => (header[c], rows.Select(r => r[c]).ToArray()))]);
    }
}
