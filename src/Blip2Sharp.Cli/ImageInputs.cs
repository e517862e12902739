namespace Blip2Sharp.Cli;

/// <summary>Image arguments: files, folders (searched recursively for images) and globs (* and ? in the file name).</summary>
public static class ImageInputs
{
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
