using Blip2Sharp.Processing;
using Blip2Sharp.Tasks;
using Microsoft.Extensions.AI;
using static TorchSharp.torch;

namespace Blip2Sharp.Clients;

/// <summary>
/// Microsoft.Extensions.AI's text embedding generator over a BLIP-2 retrieval checkpoint: the Q-Former's [CLS] text
/// feature after text_proj, 256 values of unit length (ITC's text side). Thread-safe (calls take turns).
/// </summary>
public sealed class Blip2TextEmbeddingGenerator(Blip2Retriever retriever, string? modelId = null)
    : IEmbeddingGenerator<string, Embedding<float>>
{
    public EmbeddingGeneratorMetadata Metadata { get; } = new("blip2sharp", null, modelId ?? "blip2-retrieval",
        (int)retriever.Model.TextProjection.Weight.shape[0]);

    public Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync(IEnumerable<string> values,
        EmbeddingGenerationOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        var texts = values.ToList();
        lock (retriever)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            using var features = retriever.EncodeTexts(texts);
            var result = new GeneratedEmbeddings<Embedding<float>>(texts.Count)
            {
                Usage = new UsageDetails { InputTokenCount = (int)features.AttentionMask.sum().item<long>() },
            };
            for (int i = 0; i < texts.Count; i++)
                result.Add(new Embedding<float>(features.Embeds[i].data<float>()
                    .ToArray()) { ModelId = Metadata.DefaultModelId, CreatedAt = DateTimeOffset.UtcNow });
            return Task.FromResult(result);
        }
    }

    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is null && serviceType == typeof(EmbeddingGeneratorMetadata) ? Metadata
        : serviceKey is null && serviceType.IsInstanceOfType(this) ? this : null;

    public void Dispose() { }
}

/// <summary>
/// Microsoft.Extensions.AI's image embedding generator over a BLIP-2 retrieval checkpoint: an image
/// (<see cref="DataContent"/>) gives its query embeddings, num_query_tokens × 256 values row after row (each row of
/// unit length; ITC scores a text against an image as the best of the rows). Thread-safe (calls take turns).
/// </summary>
public sealed class Blip2ImageEmbeddingGenerator(Blip2Retriever retriever, string? modelId = null)
    : IEmbeddingGenerator<DataContent, Embedding<float>>
{
    public EmbeddingGeneratorMetadata Metadata { get; } = new("blip2sharp", null, modelId ?? "blip2-retrieval",
        (int)(retriever.Model.QueryTokens.shape[1] * retriever.Model.VisionProjection.Weight.shape[0]));

    public Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync(IEnumerable<DataContent> values,
        EmbeddingGenerationOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        var images = values.Select((d, i) => d.HasTopLevelMediaType("image")
            ? ImageDecoder.Decode(d.Data.ToArray(), d.Name ?? $"image {i}", retriever.ImageProcessor.DecodeOptions)
            : throw new ArgumentException($"value {i} is {d.MediaType}, not an image.")).ToList();
        lock (retriever)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            using var features = retriever.EncodePixels(retriever.ImageProcessor.Preprocess(images));
            var result = new GeneratedEmbeddings<Embedding<float>>(images.Count);
            for (int i = 0; i < images.Count; i++)
                result.Add(new Embedding<float>(features.Embeds[i].contiguous().data<float>()
                    .ToArray()) { ModelId = Metadata.DefaultModelId, CreatedAt = DateTimeOffset.UtcNow });
            return Task.FromResult(result);
        }
    }

    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is null && serviceType == typeof(EmbeddingGeneratorMetadata) ? Metadata
        : serviceKey is null && serviceType.IsInstanceOfType(this) ? this : null;

    public void Dispose() { }
}
