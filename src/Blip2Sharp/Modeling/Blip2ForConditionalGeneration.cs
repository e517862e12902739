using Blip2Sharp.Configuration;
using Blip2Sharp.Loading;
using Blip2Sharp.Modeling.Layers;
using Blip2Sharp.Modeling.Opt;
using Blip2Sharp.Modeling.QFormer;
using Blip2Sharp.Modeling.T5;
using Blip2Sharp.Modeling.Vision;
using Parameter = TorchSharp.Modules.Parameter;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Blip2Sharp.Modeling;

/// <summary>Everything a forward pass of <see cref="Blip2ForConditionalGeneration"/> produces.</summary>
public sealed record Blip2Output : IDisposable
{
    public required VisionOutput Vision { get; init; }
    public required QFormerOutput QFormer { get; init; }
    /// <summary>language_projection(query outputs) [B, Q, LM width].</summary>
    public required Tensor LanguageProjection { get; init; }
    /// <summary>[B, T, V]; with labels on a decoder-only LM, only the last labels.size(1) positions (as the reference).</summary>
    public required Tensor Logits { get; init; }
    public Tensor? Loss { get; init; }
    /// <summary>OPT: the decoder's hidden states; T5: the decoder's.</summary>
    public IReadOnlyList<Tensor>? LmHiddenStates { get; init; }
    /// <summary>T5 only: the encoder's hidden states.</summary>
    public IReadOnlyList<Tensor>? LmEncoderHiddenStates { get; init; }

    public void Dispose()
    {
        Vision.Dispose();
        QFormer.Dispose();
        LanguageProjection.Dispose();
        Logits.Dispose();
        Loss?.Dispose();
        if (LmHiddenStates is not null) foreach (var t in LmHiddenStates) t.Dispose();
        if (LmEncoderHiddenStates is not null) foreach (var t in LmEncoderHiddenStates) t.Dispose();
    }
}

/// <summary>
/// BLIP-2 for generation: frozen ViT → Q-Former over learned queries → language_projection → soft prompt of the
/// frozen OPT or T5. Also offers Blip2Model's feature methods, which share its weights and names.
/// </summary>
public sealed class Blip2ForConditionalGeneration : nn.Module
{
    [ComponentName(Name = "vision_model")] private readonly Blip2VisionModel _visionModel;
    [ComponentName(Name = "query_tokens")] private readonly Parameter _queryTokens; // [1, Q, E_qformer]
    [ComponentName(Name = "qformer")] private readonly Blip2QFormerModel _qformer;
    [ComponentName(Name = "language_projection")] private readonly Linear _languageProjection;
    [ComponentName(Name = "language_model")] private readonly nn.Module _languageModel;

    public Blip2Config Config { get; }

    public Blip2ForConditionalGeneration(Blip2Config c, ModelOptions o) : base(nameof(Blip2ForConditionalGeneration))
    {
        Config = c;
        if (c.TextConfig is OptConfig opt && opt.WordEmbedProjDim != opt.HiddenSize)
            throw new InvalidConfigException($"BLIP-2 needs OPT's word_embed_proj_dim ({opt.WordEmbedProjDim}) equal to hidden_size ({opt.HiddenSize}): the projected queries are merged at embedding width (the reference scrambles them otherwise).");
        var fp32 = o.WithDType(ScalarType.Float32); // _keep_in_fp32_modules = ["query_tokens", "qformer"]
        _visionModel = new Blip2VisionModel(c.VisionConfig, o);
        _queryTokens = fp32.Param(1, c.NumQueryTokens, c.QFormerConfig.HiddenSize);
        _qformer = new Blip2QFormerModel(c.QFormerConfig, fp32);
        _languageProjection = new Linear(c.QFormerConfig.HiddenSize, c.TextConfig.EmbeddingWidth, true, o);
        _languageModel = c.TextConfig switch
        {
            OptConfig oc => new OptForCausalLM(oc, o),
            // T5 overflows in fp16: keep it out of half precision (bf16 or fp32 only).
            T5Config tc => new T5ForConditionalGeneration(tc, o.DType == ScalarType.Float16 ? o.WithDType(ScalarType.Float32) : o),
            _ => throw new UnknownModelTypeException($"text model '{c.TextConfig.ModelType}' is not supported."),
        };
        RegisterComponents();
    }

    public Blip2VisionModel VisionModel => _visionModel;
    public Blip2QFormerModel QFormer => _qformer;
    public Parameter QueryTokens => _queryTokens;
    public Linear LanguageProjectionLayer => _languageProjection;
    public OptForCausalLM? Opt => _languageModel as OptForCausalLM;
    public T5ForConditionalGeneration? T5 => _languageModel as T5ForConditionalGeneration;
    public ScalarType LmDType => _languageProjection.Weight.dtype;
    public Device Device => _queryTokens.device;

    /// <summary>The checkpoint names of tied copies (alias → parameter), for strict loading.</summary>
    public IReadOnlyDictionary<string, string> TiedAliases =>
        (Opt is not null ? OptForCausalLM.TiedAliases : T5!.TiedAliases)
        .ToDictionary(kv => "language_model." + kv.Key, kv => "language_model." + kv.Value);

    /// <summary>Reads config.json and the weights of a checkpoint folder, strictly (fp16/bf16 upcast to the options' dtype).</summary>
    public static Blip2ForConditionalGeneration FromPretrained(string folder, ModelOptions? options = null, ConfigWarnings? warnings = null)
    {
        var config = Blip2Config.Load(folder, warnings ?? new ConfigWarnings());
        if (config.Architectures?.Contains("Blip2ForImageTextRetrieval") == true)
            throw new InvalidConfigException($"{folder} is a Blip2ForImageTextRetrieval checkpoint: it has no language model to generate text with; use it with `blip2 match`, `embed`, `index` or `search`.");
        var model = new Blip2ForConditionalGeneration(config, options ?? ModelOptions.Cpu);
        try
        {
            using var reader = CheckpointReader.Open(folder);
            WeightLoader.Load(model, reader, new WeightMapping { Aliases = model.TiedAliases });
            model.eval();
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Vision tower → Q-Former over the learned queries (Blip2Model.get_qformer_features).</summary>
    public (VisionOutput Vision, QFormerOutput QFormer) EncodeImage(Tensor pixelValues, bool outputHiddenStates = false)
    {
        using var scope = NewDisposeScope();
        var vision = _visionModel.Forward(pixelValues.to(Device), outputHiddenStates);
        long b = pixelValues.shape[0];
        var queries = _queryTokens.expand(b, -1, -1); // [B, Q, E]
        var q = _qformer.Forward(queries, imageEmbeds: vision.LastHiddenState, outputHiddenStates: outputHiddenStates);
        return (Moved(vision), Moved(q));
    }

    /// <summary>The soft prompt: language_projection(Q-Former query outputs) [B, Q, LM width], computed once per image.</summary>
    public Tensor ImagePrefix(Tensor pixelValues)
    {
        using var scope = NewDisposeScope();
        var (vision, q) = EncodeImage(pixelValues);
        return _languageProjection.forward(q.LastHiddenState.to(LmDType)).MoveToOuterDisposeScope();
    }

    /// <summary>Token embeddings of the language model.</summary>
    public Tensor EmbedTokens(Tensor ids) => Opt is not null ? Opt.EmbedTokens(ids) : T5!.EmbedTokens(ids);

    /// <summary>
    /// Puts the projected queries into the LM input: at the &lt;image&gt; token positions when image_token_index is set
    /// (masked_scatter, row by row), otherwise in front of the text with ones in front of the mask (legacy).
    /// Returns (inputs_embeds, attention_mask).
    /// </summary>
    public (Tensor Embeds, Tensor Mask) MergeImagePrefix(Tensor prefix, Tensor inputIds, Tensor? attentionMask, bool? useImageTokens = null)
    {
        using var scope = NewDisposeScope();
        inputIds = inputIds.to(Device);
        attentionMask = (attentionMask ?? ones_like(inputIds)).to(Device);
        var embeds = EmbedTokens(inputIds);
        bool imageTokens = useImageTokens ?? Config.ImageTokenIndex is not null;
        if (imageTokens)
        {
            int id = Config.ImageTokenIndex ?? throw new InvalidConfigException("image_token_index is not set in config.json; use the legacy path.");
            var isImage = inputIds.eq(id);                                   // [B, T]
            var perRow = isImage.sum(1);
            long q = prefix.shape[1];
            if (perRow.ne(q).any().item<bool>())
                throw new ArgumentException($"every prompt must hold exactly {q} <image> tokens (id {id}); found [{string.Join(", ", perRow.data<long>().ToArray())}].");
            var mask3 = isImage.unsqueeze(-1).expand_as(embeds);             // [B, T, E]
            embeds = embeds.masked_scatter(mask3, prefix.to(embeds.dtype));
        }
        else
        {
            embeds = cat([prefix.to(embeds.dtype), embeds], 1);                                    // [B, Q + T, E]
            attentionMask = cat([ones(prefix.shape[0], prefix.shape[1], dtype: attentionMask.dtype, device: Device), attentionMask], 1);
        }
        return (embeds.MoveToOuterDisposeScope(), attentionMask.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// The reference's forward: logits and, with labels, the loss (decoder-only: logits[:, -L:] shifted against
    /// labels[:, 1:], mean CE over labels ≠ −100; T5: its own loss with shift_right(labels) as decoder input).
    /// useImageTokens = false runs the legacy path even when image_token_index is set.
    /// </summary>
    public Blip2Output Forward(Tensor pixelValues, Tensor inputIds, Tensor? attentionMask = null, Tensor? labels = null,
        Tensor? decoderInputIds = null, Tensor? decoderAttentionMask = null, bool outputHiddenStates = false, bool? useImageTokens = null)
    {
        using var scope = NewDisposeScope();
        var (vision, q) = EncodeImage(pixelValues, outputHiddenStates);
        var projection = _languageProjection.forward(q.LastHiddenState.to(LmDType));
        var (embeds, mask) = MergeImagePrefix(projection, inputIds, attentionMask, useImageTokens);
        labels = labels?.to(Device);

        Tensor logits;
        Tensor? loss = null;
        IReadOnlyList<Tensor>? lmStates = null, lmEncStates = null;
        if (Opt is { } opt)
        {
            var lm = opt.Forward(embeds, mask, outputHiddenStates: outputHiddenStates);
            logits = lm.Logits;
            lmStates = lm.HiddenStates;
            if (labels is not null)
            {
                logits = logits[.., ^(int)labels.shape[1].., ..];
                var shiftLogits = logits[.., ..^1, ..].contiguous();
                var shiftLabels = labels[.., 1..].contiguous();
                loss = F.cross_entropy(shiftLogits.view(-1, shiftLogits.shape[^1]), shiftLabels.view(-1), ignore_index: -100);
            }
        }
        else
        {
            var lm = T5!.Forward(embeds, mask, decoderInputIds?.to(Device), labels, decoderAttentionMask?.to(Device), outputHiddenStates);
            logits = lm.Logits;
            loss = lm.Loss;
            lmStates = lm.DecoderHiddenStates;
            lmEncStates = lm.EncoderHiddenStates;
        }
        return new Blip2Output
        {
            Vision = Moved(vision),
            QFormer = Moved(q),
            LanguageProjection = projection.MoveToOuterDisposeScope(),
            Logits = logits.MoveToOuterDisposeScope(),
            Loss = loss?.MoveToOuterDisposeScope(),
            LmHiddenStates = lmStates?.Select(t => t.MoveToOuterDisposeScope()).ToList(),
            LmEncoderHiddenStates = lmEncStates?.Select(t => t.MoveToOuterDisposeScope()).ToList(),
        };
    }

    /// <summary>Blip2Model.get_image_features: the vision tower's outputs.</summary>
    public VisionOutput GetImageFeatures(Tensor pixelValues, bool outputHiddenStates = false) => _visionModel.Forward(pixelValues.to(Device), outputHiddenStates);

    /// <summary>Blip2Model.get_qformer_features: the Q-Former's outputs over the learned queries.</summary>
    public QFormerOutput GetQFormerFeatures(Tensor pixelValues)
    {
        var (vision, q) = EncodeImage(pixelValues);
        vision.Dispose();
        return q;
    }

    /// <summary>Blip2Model.get_text_features: the language model's logits on text alone.</summary>
    public Tensor GetTextFeatures(Tensor inputIds, Tensor? attentionMask = null, Tensor? decoderInputIds = null)
    {
        using var scope = NewDisposeScope();
        inputIds = inputIds.to(Device);
        attentionMask = (attentionMask ?? ones_like(inputIds)).to(Device);
        if (Opt is { } opt)
        {
            var lm = opt.Forward(opt.EmbedTokens(inputIds), attentionMask); // the scope frees what is not returned
            return lm.Logits.MoveToOuterDisposeScope();
        }
        var t5 = T5!.Forward(T5.EmbedTokens(inputIds), attentionMask, decoderInputIds?.to(Device) ?? throw new ArgumentException("T5 text features need decoder_input_ids."));
        return t5.Logits.MoveToOuterDisposeScope();
    }

    private static VisionOutput Moved(VisionOutput v) => new(v.LastHiddenState.MoveToOuterDisposeScope(), v.PoolerOutput.MoveToOuterDisposeScope(),
        v.HiddenStates?.Select(t => t.MoveToOuterDisposeScope()).ToList());

    private static QFormerOutput Moved(QFormerOutput q) => new(q.LastHiddenState.MoveToOuterDisposeScope(), q.PoolerOutput.MoveToOuterDisposeScope(),
        q.HiddenStates?.Select(t => t.MoveToOuterDisposeScope()).ToList(),
        q.SelfAttentionKv?.Select(kv => (kv.Key.MoveToOuterDisposeScope(), kv.Value.MoveToOuterDisposeScope())).ToList());
}
