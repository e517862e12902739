using Blip2Sharp.Configuration;
using Blip2Sharp.Modeling;
using Xunit;
using static TorchSharp.torch;

namespace Blip2Sharp.Tests;

/// <summary>
/// The full-size official architectures, built on the meta device (no weight memory), list exactly the
/// reference's tensor names and shapes: state_dict.txt (tied aliases included) and saved_keys.txt (as saved).
/// </summary>
public class ManifestTests
{
    public static TheoryData<string> Repos() => new()
    {
        "blip2-opt-2.7b", "blip2-opt-6.7b", "blip2-opt-2.7b-coco", "blip2-flan-t5-xl", "blip2-flan-t5-xxl", "blip2-itm-vit-g",
    };

    private static Dictionary<string, string> ReadManifest(string path) =>
        File.ReadLines(path).Where(l => l.Length > 0 && !l.StartsWith('#'))
            .Select(l => l.Split('\t'))
            .ToDictionary(p => p[0], p => p[1]);

    private static string Shape(long[] s) => "[" + string.Join(", ", s) + "]";

    [Theory]
    [MemberData(nameof(Repos))]
    public void NamesAndShapesMatchTheReference(string repo)
    {
        string dir = Fixtures.Dir("manifests/" + repo);
        var config = Blip2Config.Load(dir, new ConfigWarnings());
        bool retrieval = config.Architectures?.Contains("Blip2ForImageTextRetrieval") == true;
        using nn.Module model = retrieval
            ? new Blip2ForImageTextRetrieval(config, ModelOptions.Meta)
            : new Blip2ForConditionalGeneration(config, ModelOptions.Meta);
        var ours = model.named_parameters().ToDictionary(p => p.name, p => Shape(p.parameter.shape));
        Assert.All(model.parameters(), p => Assert.Equal(TorchSharp.DeviceType.META, p.device_type));

        var saved = ReadManifest(Path.Combine(dir, "saved_keys.txt"));
        Assert.Equal(saved.Keys.Order(), ours.Keys.Order());
        foreach (var (name, shape) in saved) Assert.True(ours[name] == shape, $"{repo}: {name} is {ours[name]}, reference {shape}");

        // state_dict = saved tensors + tied aliases, each with its parameter's shape.
        var withAliases = new Dictionary<string, string>(ours);
        if (model is Blip2ForConditionalGeneration g)
        {
            foreach (var (alias, canonical) in g.TiedAliases) withAliases[alias] = ours[canonical];
        }
        var stateDict = ReadManifest(Path.Combine(dir, "state_dict.txt"));
        Assert.Equal(stateDict.Keys.Order(), withAliases.Keys.Order());
        foreach (var (name, shape) in stateDict) Assert.True(withAliases[name] == shape, $"{repo}: {name} is {withAliases[name]}, reference {shape}");
    }
}
