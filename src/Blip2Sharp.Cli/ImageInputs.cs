using Blip2Sharp.Processing;

namespace Blip2Sharp.Cli;

/// <summary>
/// Image arguments, one rule for every command that reads images: files, folders (searched recursively for images)
/// and globs (* and ? in the file name) are accepted; an image that cannot be read (missing, corrupt, truncated, a
/// decompression bomb) is an error, named on standard error as `blip2: error: PATH: reason`, and the command exits
/// with 1. Commands that give one result per image (caption, ask, index) still process the readable ones; commands
/// whose output pairs or stacks the images (match, embed, preprocess) check every image first and write nothing.
/// </summary>
public static class ImageInputs
{
    /// <summary>Names an image that cannot be read, as an error line (the command will exit with 1).</summary>
    public static void ReportUnreadable(string message) => Console.Error.WriteLine($"blip2: error: {message}");

    /// <summary>
    /// Decodes every image once, before any model work; throws when one cannot be read. Each unreadable image gets one
    /// error line: all but the last are written here, the last is the exception's (with "nothing was written").
    /// </summary>
    public static void RequireReadable(IReadOnlyList<string> paths, ImageDecodeOptions? options = null)
    {
        var bad = new List<string>();
        foreach (var path in paths)
        {
            try
            {
                ImageDecoder.DecodeFile(path, options ?? new ImageDecodeOptions { OnWarning = Blip2Cli.Warn });
            }
            catch (Exception e) when (e is Blip2Exception or IOException or UnauthorizedAccessException)
            {
                bad.Add(e.Message.TrimEnd('.'));
            }
        }
        if (bad.Count == 0) return;
        foreach (var message in bad.SkipLast(1)) ReportUnreadable(message);
        string more = bad.Count > 1 ? $" ({bad.Count} of {paths.Count} images could not be read)" : "";
        throw new Blip2Exception($"{bad[^1]}{more}; nothing was written.");
    }

    public static List<string> Expand(IEnumerable<string> args)
    {
        var result = new List<string>();
        foreach (var a in args)
        {
            if (Directory.Exists(a))
            {
                result.AddRange(Directory.EnumerateFiles(a, "*", SearchOption.AllDirectories).Where(Tasks.ImageIndex.IsImage).Order(StringComparer.Ordinal));
            }
            else if (a.Contains('*') || a.Contains('?'))
            {
                string dir = Path.GetDirectoryName(a) is { Length: > 0 } d ? d : ".";
                if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"{dir}: folder not found (in pattern {a}).");
                var matches = Directory.EnumerateFiles(dir, Path.GetFileName(a)).Order(StringComparer.Ordinal).ToList();
                if (matches.Count == 0) throw new FileNotFoundException($"{a}: no file matches.");
                result.AddRange(matches);
            }
            else result.Add(a); // a missing file is reported for that image when it is decoded
        }
        if (result.Count == 0) throw new ArgumentException("no images given (files, folders or globs).");
        return result;
    }
}
