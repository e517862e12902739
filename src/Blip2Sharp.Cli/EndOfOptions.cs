using System.Reflection;
using Spectre.Console.Cli;

namespace Blip2Sharp.Cli;

/// <summary>
/// `--` ends the options: every argument after it is a positional value even when it starts with '-'
/// (`blip2 tokenize -- "-5 degrees"`). Spectre.Console.Cli reads any token that starts with '-' as an option, so each
/// value after `--` is handed to it as a placeholder, and the placeholders are replaced by the values in the command's
/// settings before the command runs.
/// </summary>
internal sealed class EndOfOptions(IReadOnlyList<string> values) : ICommandInterceptor
{
    private const string Prefix = "\u001Fblip2-positional-";

    /// <summary>The arguments with `--` and what follows it replaced by placeholders (unchanged without `--`).</summary>
    public static (string[] Args, EndOfOptions Interceptor) Split(string[] args)
    {
        int at = Array.IndexOf(args, "--");
        if (at < 0) return (args, new EndOfOptions([]));
        var values = args[(at + 1)..];
        return ([.. args[..at], .. values.Select((_, i) => Prefix + i)], new EndOfOptions(values));
    }

    private string Restore(string s) =>
        s.StartsWith(Prefix, StringComparison.Ordinal) && int.TryParse(s[Prefix.Length..], out int i) && i < values.Count ? values[i] : s;

    public void Intercept(CommandContext context, CommandSettings settings)
    {
        if (values.Count == 0) return;
        foreach (var p in settings.GetType().GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            if (p.GetCustomAttribute<CommandArgumentAttribute>() is null || !p.CanWrite) continue;
            if (p.GetValue(settings) is string s) p.SetValue(settings, Restore(s));
            else if (p.GetValue(settings) is string[] a) p.SetValue(settings, a.Select(Restore).ToArray());
        }
    }

    public void InterceptResult(CommandContext context, CommandSettings settings, ref int result) { }
}
