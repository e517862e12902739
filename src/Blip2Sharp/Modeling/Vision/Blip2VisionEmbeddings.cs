using Blip2Sharp.Configuration;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Blip2Sharp.Modeling.Vision;

/// <summary>Patch embedding (a strided conv), class token, learned absolute positions.</summary>
public sealed class Blip2VisionEmbeddings : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "class_embedding")] private readonly Parameter _classEmbedding;   // [1, 1, D]
    [ComponentName(Name = "position_embedding")] private readonly Parameter _positionEmbedding; // [1, 1 + N, D]
    [ComponentName(Name = "patch_embedding")] private readonly PatchConv _patchEmbedding;
    private readonly int _patchSize;

    public Blip2VisionEmbeddings(Blip2VisionConfig c, ModelOptions o) : base(nameof(Blip2VisionEmbeddings))
    {
        _classEmbedding = o.Param(1, 1, c.HiddenSize);
        _positionEmbedding = o.Param(1, c.NumPatches + 1, c.HiddenSize);
        _patchEmbedding = new PatchConv(c.NumChannels, c.HiddenSize, c.PatchSize, o);
        _patchSize = c.PatchSize;
        RegisterComponents();
    }

    /// <summary>pixel_values [B, C, H, W] → embeddings [B, 1 + (H/p)(W/p), D].</summary>
    public override Tensor forward(Tensor pixelValues)
    {
        using var scope = NewDisposeScope();
        long b = pixelValues.shape[0], h = pixelValues.shape[2], w = pixelValues.shape[3];
        var patches = _patchEmbedding.forward(pixelValues.to(_classEmbedding.dtype)); // [B, D, H/p, W/p]
        patches = patches.flatten(2).transpose(1, 2);                                 // [B, N, D]
        var cls = _classEmbedding.expand(b, 1, -1);                                    // [B, 1, D]
        var emb = cat([cls, patches], 1);                                              // [B, 1 + N, D]
        var pos = emb.shape[1] == _positionEmbedding.shape[1] && h == w
            ? (Tensor)_positionEmbedding
            : InterpolatePositions(emb.shape[1] - 1, h, w);
        return Layers.Scalars.Add(emb, pos[.., ..(int)emb.shape[1], ..]).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// interpolate_pos_encoding: the patch positions resized bicubically (align_corners=False) to the new grid,
    /// for images of another size than the checkpoint's.
    /// </summary>
    private Tensor InterpolatePositions(long numPatches, long height, long width)
    {
        long dim = _positionEmbedding.shape[2];
        long numPositions = _positionEmbedding.shape[1] - 1;
        long side = (long)Math.Sqrt(numPositions);
        long newH = height / _patchSize, newW = width / _patchSize;
        if (newH * newW != numPatches)
            throw new ArgumentException($"image {height}x{width} does not tile into {numPatches} patches of {_patchSize} px.");
        var clsPos = _positionEmbedding[.., ..1];                                  // [1, 1, D]
        var patchPos = _positionEmbedding[.., 1..]
            .reshape(1, side, side, dim)                                          // [1, s, s, D]
            .permute(0, 3, 1, 2);                                                 // [1, D, s, s]
        patchPos = F.interpolate(patchPos, size: [newH, newW], mode: InterpolationMode.Bicubic, align_corners: false);
        patchPos = patchPos.permute(0, 2, 3, 1).reshape(1, -1, dim);              // [1, newH·newW, D]
        return cat([clsPos, patchPos], 1);                                        // [1, 1 + N', D]
    }

    /// <summary>nn.Conv2d(C, D, kernel = stride = patch) with bias, named like the reference (weight, bias).</summary>
    public sealed class PatchConv : nn.Module<Tensor, Tensor>
    {
        [ComponentName(Name = "weight")] private readonly Parameter _weight; // [D, C, p, p]
        [ComponentName(Name = "bias")] private readonly Parameter _bias;     // [D]
        private readonly long _patch;

        public PatchConv(int channels, int dim, int patch, ModelOptions o) : base(nameof(PatchConv))
        {
            _weight = o.Param(dim, channels, patch, patch);
            _bias = o.Param(dim);
            _patch = patch;
            RegisterComponents();
        }

        public override Tensor forward(Tensor x) => F.conv2d(x, _weight, _bias, strides: [_patch, _patch]);
    }
}
