using System.Text.Json.Nodes;
using Blip2Sharp.Configuration;
using Blip2Sharp.Loading;
using Blip2Sharp.Modeling;
using Blip2Sharp.Modeling.Opt;
using Blip2Sharp.Processing.Tokenizers;
using Blip2Sharp.Training;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Blip2Sharp.Demo;

/// <summary>
/// The demo's frozen language model, pre-trained on text only: first repeated random word sequences (which teach it
/// to copy from its context), then scenes described in words, followed by questions and answers about them ("a red
/// circle to the left of a blue square. Question: what color is the circle? Answer: red"), and plain captions ending
/// in "\n". Saved as an OPTForCausalLM folder in the Hugging Face layout.
/// </summary>
public static class TextPretraining
{
    public sealed record Options
    {
        public int HiddenSize { get; init; } = 128;
        public int Layers { get; init; } = 4;
        public int Heads { get; init; } = 8;
        public int FfnDim { get; init; } = 512;
        public int Steps { get; init; } = 6000;
        public int BatchSize { get; init; } = 32;
        public double Lr { get; init; } = 1e-3;
        public long Seed { get; init; } = 1;
        /// <summary>First steps trained on repetition documents only (see <see cref="Repetitions"/>).</summary>
        public int RepetitionSteps { get; init; } = 1500;
        /// <summary>Share of repetition documents among the scene texts after those first steps.</summary>
        public double RepetitionShare { get; init; } = 0.2;
        /// <summary>
        /// Extra weight of the answer tokens (the first token after "Answer:") in the loss, as a second mean (0: the
        /// plain mean). An answer is one token among ~100 of its document, most of which cannot be predicted. With the
        /// descriptions placed as soft prompts, text question answering over 150 descriptions (colour / shape) went
        /// from 93.3 / 70.5 % without it to 99.0 / 82.9 % with 1, but restating a description fell from 98.1 % of its
        /// tokens right to 89.2 % (teacher-forced), so captions went wrong: hence <see cref="RestateWeight"/>.
        /// </summary>
        public double AnswerWeight { get; init; } = 1;
        /// <summary>
        /// When &gt; 0 (the demo: its number of queries), a scene text's first document, the description, stands as a
        /// soft prompt of this length would (<see cref="SoftPromptLayout"/>: bos, attended pad tokens without loss, then
        /// the description), so that its &lt;/s&gt; and the question after it stand where BLIP-2 puts them after the
        /// queries. Repetition documents keep their layout.
        /// </summary>
        public int PromptLength { get; init; }
        /// <summary>
        /// Extra weight of the tokens of a restated description (the second document of "description&lt;/s&gt;the
        /// description in another phrasing", what a caption after the soft prompt is), as a third mean. With both
        /// weights at 1 (the demo's recipe): colour 88.6 % / shape 69.8 % on the same 150 descriptions, 98.5 % of
        /// restated tokens right, and the BLIP-2 built on it captions 100 % of its test scenes right.
        /// </summary>
        public double RestateWeight { get; init; } = 1;
    }

    /// <summary>The separator of packed documents (OPT's bos/eos), written into corpus texts where one document ends.</summary>
    public const string Separator = "</s>";

    /// <summary>
    /// Texts of the scene world. Each scene gives a caption (ending in "\n", where generation stops), a caption
    /// restated in another phrasing after a separator, a caption followed by all its questions answered as the next
    /// packed document ("caption&lt;/s&gt;Question: … Answer: red\nQuestion: …"), twice, one question inline as in
    /// "… background. Question: what color is the circle? Answer: red", and two short documents about one object. OPT's own pre-training packs documents between &lt;/s&gt;
    /// separators the same way; here it teaches the model to read a description that stands before a &lt;/s&gt;, which is
    /// where BLIP-2 puts the soft prompt: [queries]&lt;/s&gt;Question: … Answer:.
    /// </summary>
    public static List<string> Corpus(int scenes, long seed)
    {
        var rng = new Random((int)seed);
        var texts = new List<string>();
        for (int i = 0; i < scenes; i++)
        {
            var scene = Scene.Random(rng);
            var captions = scene.Captions();
            string Any() => captions[rng.Next(captions.Count)];
            texts.Add(Any() + "\n");
            texts.Add(Any() + Separator + Any() + "\n");
            // All the scene's questions after one description: an answer is one token in a long text, so packing
            // several per document gives the model many more chances to learn to look the answer up.
            var qa = scene.Questions(rng);
            for (int k = 0; k < 2; k++)
                texts.Add(Any() + Separator + string.Concat(qa.OrderBy(_ => rng.Next()).Select(x => $"Question: {x.Question} Answer: {x.Answer}\n")));
            var (_, q, a) = qa[rng.Next(qa.Count)];
            texts.Add($"{Any()}. Question: {q} Answer: {a}\n");
            // Short documents, one object described, make the look-up easy to discover before long descriptions.
            var one = scene.Objects[rng.Next(scene.Objects.Count)];
            texts.Add($"{one.Phrase}{Separator}Question: what shape is the {one.Color} object? Answer: {one.ShapeName}\n");
            texts.Add($"{one.Phrase}{Separator}Question: what color is the {one.ShapeName}? Answer: {one.Color}\n");
        }
        return texts;
    }

    /// <summary>
    /// Repetition documents: a random sequence of 3–24 words, then the same sequence again after a separator. Reading
    /// anything from a context (a description before a question, a soft prompt before a caption) needs induction heads:
    /// attend to the earlier occurrence of the current token and copy the token that followed it. Natural text is full
    /// of repeats that teach LLMs this; the scene texts alone did not: after 3,000 steps the model answered "what shape
    /// is the yellow object?" with the same probabilities (circle 0.35, triangle 0.34, square 0.31) whatever the
    /// description said. Random lengths matter: at a fixed length the copy is learned from positions alone.
    /// </summary>
    public static List<string> Repetitions(IReadOnlyList<string> words, int count, long seed)
    {
        var rng = new Random((int)seed);
        var texts = new List<string>(count);
        for (int i = 0; i < count; i++)
        {
            string sequence = string.Join(" ", Enumerable.Range(0, rng.Next(3, 25)).Select(_ => words[rng.Next(words.Count)]));
            texts.Add(sequence + Separator + sequence + "\n");
        }
        return texts;
    }

    /// <summary>
    /// Token ids of a corpus text: bos, then the documents with the separator's id between them. With
    /// <paramref name="promptLength"/> &gt; 0, a text of several documents whose first fits has it placed as
    /// <see cref="SoftPromptLayout"/> places a soft prompt's text, so that the first separator stands at that index.
    /// </summary>
    public static List<int> EncodeDocuments(Tokenizer tokenizer, string text, int promptLength = 0)
    {
        var parts = text.Split(Separator);
        var first = promptLength > 0 && parts.Length > 1 ? tokenizer.Encode(parts[0], addSpecialTokens: false).Ids : null;
        var ids = first is not null && SoftPromptLayout.Fits(first.Count, promptLength)
            ? SoftPromptLayout.Place(first, promptLength, tokenizer.BosTokenId!.Value, tokenizer.PadTokenId!.Value)
            : tokenizer.Encode(parts[0]).Ids.ToList();
        foreach (var part in parts.Skip(1))
        {
            ids.Add(tokenizer.TokenToId(Separator));
            ids.AddRange(tokenizer.Encode(part, addSpecialTokens: false).Ids);
        }
        return ids;
    }

    public static OptConfig Config(Options o, int vocab) => new()
    {
        VocabSize = (vocab + 7) / 8 * 8,
        HiddenSize = o.HiddenSize,
        NumHiddenLayers = o.Layers,
        NumAttentionHeads = o.Heads,
        FfnDim = o.FfnDim,
        MaxPositionEmbeddings = 128,
        Dropout = 0.0,
        EosTokenId = [2],
    };

    /// <summary>
    /// Trains from scratch: <see cref="Options.RepetitionSteps"/> steps on <paramref name="repetitions"/>, then the
    /// scene texts with a share of repetitions mixed in. The loss is the mean over all tokens, plus, when
    /// <see cref="Options.AnswerWeight"/> is set, that weight × the mean over answer tokens (an answer is one token among
    /// ~100 of its document, most of which, the random attributes of a description, cannot be predicted). Returns the
    /// mean loss of the first and the last 10 % of the steps.
    /// </summary>
    public static (double First, double Last) Train(OptForCausalLM lm, Tokenizer tokenizer, IReadOnlyList<string> texts, IReadOnlyList<string> repetitions, Options o,
        Action<int, double>? progress = null)
    {
        manual_seed(o.Seed);
        ModelInit.Randomize(lm, o.Seed);
        var rng = new Random((int)o.Seed);
        lm.train();
        // A row's ids and where its restated description starts (-1: the row restates nothing).
        (List<int> Ids, int Restated) Draw(int step)
        {
            if (repetitions.Count > 0 && (step < o.RepetitionSteps || rng.NextDouble() < o.RepetitionShare))
                return (EncodeDocuments(tokenizer, repetitions[rng.Next(repetitions.Count)]), -1);
            string text = texts[rng.Next(texts.Count)];
            var ids = EncodeDocuments(tokenizer, text, o.PromptLength);
            var parts = text.Split(Separator);
            bool restates = parts.Length == 2 && !parts[1].StartsWith("Question:", StringComparison.Ordinal);
            return (ids, restates ? ids.IndexOf(tokenizer.BosTokenId!.Value, 1) + 1 : -1);
        }
        var marker = tokenizer.Encode(" Answer:", addSpecialTokens: false).Ids;
        int pad = tokenizer.PadTokenId!.Value;
        var result = PretrainLoop.Run(lm.named_parameters().Select(p => (p.name, p.parameter)), o.Steps, o.Lr, 0.01, step =>
        {
            var drawn = Enumerable.Range(0, o.BatchSize).Select(_ => Draw(step)).ToList();
            var batch = drawn.Select(d => d.Ids.Take(lm.Config.MaxPositionEmbeddings).ToList()).ToList();
            var (ids, mask) = tokenizer.PadRight(batch);
            var logits = lm.Forward(lm.EmbedTokens(ids), mask).Logits;                 // [B, T, V]
            var labels = Labels(ids, mask, pad).reshape(-1);                            // [B*(T-1)]
            var flat = logits[.., ..^1, ..].reshape(-1, logits.shape[^1]);             // [B*(T-1), V]
            var loss = F.cross_entropy(flat, labels, ignore_index: -100);
            if (o.AnswerWeight <= 0 && o.RestateWeight <= 0) return loss;
            var perToken = F.cross_entropy(flat, labels, ignore_index: -100, reduction: nn.Reduction.None);
            Tensor Weighted(Tensor flags, double weight) => flags.sum().item<float>() == 0 ? tensor(0f) : weight * (perToken * flags).sum() / flags.sum();
            if (o.AnswerWeight > 0) loss = loss + Weighted(AnswerPositions(batch, (int)ids.shape[1], marker), o.AnswerWeight);    // flags [B*(T-1)]
            if (o.RestateWeight > 0) loss = loss + Weighted(RestatedPositions(batch, [.. drawn.Select(d => d.Restated)], (int)ids.shape[1]), o.RestateWeight);
            return loss;
        }, progress);
        lm.eval();
        return result;
    }

    /// <summary>
    /// The next-token labels [B, T − 1] of padded ids [B, T]: ids[:, 1:], −100 (no loss) on padding, both the batch's
    /// (mask 0) and the attended pad tokens placed before a description.
    /// </summary>
    internal static Tensor Labels(Tensor ids, Tensor mask, int pad) =>
        ids.masked_fill(mask.eq(0).logical_or(ids.eq(pad)), -100)[.., 1..];

    /// <summary>
    /// 1 where the label (the token after position t, t &lt; width - 1) belongs to a restated description, the row's
    /// tokens from <paramref name="starts"/>[row] on (−1: none), else 0: the tokens a caption after a soft prompt is.
    /// </summary>
    internal static Tensor RestatedPositions(IReadOnlyList<List<int>> batch, IReadOnlyList<int> starts, int width)
    {
        var flags = new float[batch.Count * (width - 1)];
        for (int b = 0; b < batch.Count; b++)
            if (starts[b] > 0)
                for (int label = starts[b]; label < batch[b].Count; label++) flags[b * (width - 1) + label - 1] = 1;
        return tensor(flags);
    }

    /// <summary>
    /// 1 where the label (the token after position t, t &lt; width - 1) is the first token after <paramref name="marker"/>
    /// (" Answer:"), else 0: the one token of a question-answer text that is looked up in the description.
    /// </summary>
    internal static Tensor AnswerPositions(IReadOnlyList<List<int>> batch, int width, IReadOnlyList<int> marker)
    {
        var flags = new float[batch.Count * (width - 1)];
        for (int b = 0; b < batch.Count; b++)
            for (int label = marker.Count; label < batch[b].Count; label++)
                if (Enumerable.Range(0, marker.Count).All(k => batch[b][label - marker.Count + k] == marker[k]))
                    flags[b * (width - 1) + label - 1] = 1;
        return tensor(flags);
    }

    /// <summary>Writes config.json (OPTForCausalLM) and model.safetensors; the tokenizer files go beside them.</summary>
    public static void Save(OptForCausalLM lm, string dir)
    {
        Directory.CreateDirectory(dir);
        var c = lm.Config;
        File.WriteAllText(Path.Combine(dir, "config.json"), new JsonObject
        {
            ["architectures"] = new JsonArray("OPTForCausalLM"), ["model_type"] = "opt", ["vocab_size"] = c.VocabSize, ["hidden_size"] = c.HiddenSize,
            ["num_hidden_layers"] = c.NumHiddenLayers, ["num_attention_heads"] = c.NumAttentionHeads, ["ffn_dim"] = c.FfnDim,
            ["max_position_embeddings"] = c.MaxPositionEmbeddings, ["word_embed_proj_dim"] = c.WordEmbedProjDim, ["do_layer_norm_before"] = c.DoLayerNormBefore,
            ["dropout"] = c.Dropout, ["activation_function"] = c.ActivationFunction, ["bos_token_id"] = 2, ["eos_token_id"] = 2, ["pad_token_id"] = 1,
            ["torch_dtype"] = "float32",
        }.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
        SafetensorsWriter.SaveModule(Path.Combine(dir, "model.safetensors"), lm);
    }

    /// <summary>Loads an OPTForCausalLM folder written by <see cref="Save"/> (or by transformers) strictly.</summary>
    public static OptForCausalLM Load(string dir)
    {
        var json = ConfigJson.ReadObject(Path.Combine(dir, "config.json"));
        var config = ConfigJson.Bind<OptConfig>(json, Path.Combine(dir, "config.json"), new ConfigWarnings(), ConfigJson.PretrainedConfigKeys);
        var lm = new OptForCausalLM(config, ModelOptions.Cpu);
        using var reader = CheckpointReader.Open(dir);
        WeightLoader.Load(lm, reader, new WeightMapping { Aliases = OptForCausalLM.TiedAliases });
        lm.eval();
        return lm;
    }
}
