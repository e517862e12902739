using Blip2Sharp.Configuration;
using Blip2Sharp.Loading;
using Blip2Sharp.Modeling.QFormer;
using Blip2Sharp.Modeling.Vision;
using TorchSharp.Utils;
using static TorchSharp.torch;
using Parameter = TorchSharp.Modules.Parameter;

namespace Blip2Sharp.Modeling;

/// <summary>
/// The vision tower, the queries and the Q-Former of any BLIP-2 checkpoint, loaded without its language model or
/// retrieval heads (Blip2Model.get_qformer_features): image features for users who only need them.
/// </summary>
public sealed class Blip2ImageFeatureModel : nn.Module
{
    [ComponentName(Name = "vision_model")] private readonly Blip2VisionModel _visionModel;
    [ComponentName(Name = "query_tokens")] private readonly Parameter _queryTokens;
    [ComponentName(Name = "qformer")] private readonly Blip2QFormerModel _qformer;

    public Blip2Config Config { get; }

    public Blip2ImageFeatureModel(Blip2Config c, ModelOptions o) : base(nameof(Blip2ImageFeatureModel))
    {
        Config = c;
        var fp32 = o.WithDType(ScalarType.Float32);
        _visionModel = new Blip2VisionModel(c.VisionConfig, o);
        _queryTokens = fp32.Param(1, c.NumQueryTokens, c.QFormerConfig.HiddenSize);
        _qformer = new Blip2QFormerModel(c.QFormerConfig, fp32);
        RegisterComponents();
    }

    /// <summary>Reads only vision_model.*, query_tokens and qformer.* (strictly); every other tensor of the file is skipped.</summary>
    public static Blip2ImageFeatureModel FromPretrained(string folder, ModelOptions? options = null, ConfigWarnings? warnings = null)
    {
        var config = Blip2Config.Load(folder, warnings ?? new ConfigWarnings());
        var model = new Blip2ImageFeatureModel(config, options ?? ModelOptions.Cpu);
        try
        {
            using var reader = CheckpointReader.Open(folder);
            var skipped = reader.Names.Where(n => !n.StartsWith("vision_model.") && n != "query_tokens" && !n.StartsWith("qformer.")).Select(n => n.Split('.')[0] + ".").Distinct().ToList();
            WeightLoader.Load(model, reader, new WeightMapping { IgnoredPrefixes = skipped });
            model.eval();
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Query outputs [B, Q, E] for pixel_values [B, 3, H, W].</summary>
    public Tensor QueryOutputs(Tensor pixelValues)
    {
        using var scope = NewDisposeScope();
        using var noGrad = inference_mode();
        var vision = _visionModel.Forward(pixelValues.to(_queryTokens.device));
        var q = _qformer.Forward(_queryTokens.expand(pixelValues.shape[0], -1, -1), imageEmbeds: vision.LastHiddenState);
        return q.LastHiddenState.MoveToOuterDisposeScope();
    }
}
