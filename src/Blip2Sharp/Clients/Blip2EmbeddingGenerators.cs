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
            var result = EmbeddingRows.Of(features.Embeds, Metadata.DefaultModelId);
            result.Usage = new UsageDetails { InputTokenCount = (int)features.AttentionMask.sum().item<long>() };
            return Task.FromResult(result);
        }
    }

    public object? GetService(Type serviceType, object? serviceKey = null)
        => EmbeddingRows.Service(this, Metadata, serviceType, serviceKey);

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
            return Task.FromResult(EmbeddingRows.Of(features.Embeds, Metadata.DefaultModelId));
        }
    }

    public object? GetService(Type serviceType, object? serviceKey = null)
        => EmbeddingRows.Service(this, Metadata, serviceType, serviceKey);

    public void Dispose() { }
}

/// <summary>What both generators share: one embedding per row of [N, …], and the services they answer.</summary>
internal static class EmbeddingRows
{
    public static GeneratedEmbeddings<Embedding<float>> Of(Tensor embeds, string? modelId)
    {
        var result = new GeneratedEmbeddings<Embedding<float>>((int)embeds.shape[0]);
        for (long i = 0; i < embeds.shape[0]; i++)
            result.Add(new Embedding<float>(embeds[i].contiguous().data<float>().ToArray()) { ModelId = modelId,
                CreatedAt = DateTimeOffset.UtcNow });
        return result;
    }

    public static object? Service(object generator, EmbeddingGeneratorMetadata metadata, Type serviceType,
        object? serviceKey) =>
        serviceKey is not null ? null
        : serviceType == typeof(EmbeddingGeneratorMetadata) ? metadata
        : serviceType.IsInstanceOfType(generator) ? generator : null;
}
