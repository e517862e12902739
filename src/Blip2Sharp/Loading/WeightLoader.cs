using static TorchSharp.torch;

namespace Blip2Sharp.Loading;

/// <summary>How a checkpoint's names relate to a model's parameters beyond one-to-one.</summary>
public sealed record WeightMapping
{
    /// <summary>Names a file may carry as copies of a parameter (tied weights): alias → parameter name.</summary>
    public IReadOnlyDictionary<string, string> Aliases { get; init; } = new Dictionary<string, string>();
    /// <summary>Checkpoint names under these prefixes are not expected by this model and are skipped.</summary>
    public IReadOnlyList<string> IgnoredPrefixes { get; init; } = [];
}

/// <summary>
/// Strict loading: every parameter and persistent buffer of the model must be in the checkpoint with the same
/// shape, and every checkpoint tensor must belong to the model (or be a declared alias); otherwise a
/// <see cref="CheckpointMismatchException"/> lists the names. Values are converted to the parameter's dtype
/// (fp16 / bf16 checkpoints are upcast to float32 on CPU).
/// </summary>
public static class WeightLoader
{
    public static void Load(nn.Module model, CheckpointReader reader, WeightMapping? mapping = null, string prefix = "")
    {
        mapping ??= new WeightMapping();
        var targets = model.named_parameters().Select(p => (p.name, (Tensor)p.parameter))
            .Concat(model.named_buffers(include_nonpersistent: false))
            .ToDictionary(p => prefix + p.Item1, p => p.Item2, StringComparer.Ordinal);

        var fileNames = reader.Names.Where(n => !mapping.IgnoredPrefixes.Any(n.StartsWith)).ToHashSet(StringComparer.Ordinal);
        var missing = new List<string>();
        var wrongShape = new List<string>();
        var plan = new List<(string Target, Func<Tensor> Read)>();

        foreach (var (name, target) in targets)
        {
            if (fileNames.Remove(name))
            {
                var (_, shape) = reader.Describe(name);
                if (!shape.SequenceEqual(target.shape)) wrongShape.Add($"{name}: checkpoint {Fmt(shape)}, model {Fmt(target.shape)}");
                else plan.Add((name, () => reader.Read(name)));
                continue;
            }
            // Legacy EVA attention: q_bias and v_bias stored separately instead of the fused qkv.bias.
            if (name.EndsWith(".qkv.bias", StringComparison.Ordinal))
            {
                string stem = name[..^".qkv.bias".Length];
                string qName = stem + ".q_bias", vName = stem + ".v_bias";
                if (fileNames.Contains(qName) && fileNames.Contains(vName))
                {
                    fileNames.Remove(qName);
                    fileNames.Remove(vName);
                    plan.Add((name, () =>
                    {
                        using var q = reader.Read(qName);
                        using var v = reader.Read(vName);
                        return cat([q, zeros_like(q), v], 0); // [3E] = q, zero k, v
                    }));
                    continue;
                }
            }
            missing.Add($"{name} {Fmt(target.shape)}");
        }

        foreach (var (alias, canonical) in mapping.Aliases)
        {
            if (!fileNames.Remove(alias)) continue;
            if (targets.TryGetValue(canonical, out var t) && !reader.Describe(alias).Shape.SequenceEqual(t.shape))
                wrongShape.Add($"{alias} (tied to {canonical}): checkpoint {Fmt(reader.Describe(alias).Shape)}, model {Fmt(t.shape)}");
        }

        var unexpected = fileNames.Order(StringComparer.Ordinal).Select(n => $"{n} {Fmt(reader.Describe(n).Shape)}").ToList();
        if (missing.Count + unexpected.Count + wrongShape.Count > 0)
        {
            var parts = new List<string>();
            if (missing.Count > 0) parts.Add($"missing from the checkpoint ({missing.Count}): {Summarize(missing)}");
            if (unexpected.Count > 0) parts.Add($"not in the model ({unexpected.Count}): {Summarize(unexpected)}");
            if (wrongShape.Count > 0) parts.Add($"shape mismatch ({wrongShape.Count}): {Summarize(wrongShape)}");
            throw new CheckpointMismatchException($"{string.Join(", ", reader.Files.Select(Path.GetFileName).Distinct())} does not match the model: {string.Join("; ", parts)}.");
        }

        if (targets.Values.FirstOrDefault()?.device_type == TorchSharp.DeviceType.META) return; // nothing to fill on meta
        using var noGrad = no_grad();
        foreach (var (name, read) in plan)
        {
            using var src = read();
            targets[name].copy_(src);
        }
    }

    private static string Fmt(long[] shape) => "[" + string.Join(", ", shape) + "]";

    private static string Summarize(List<string> items) =>
        items.Count <= 12 ? string.Join(", ", items) : string.Join(", ", items.Take(12)) + $", … ({items.Count - 12} more)";
}
