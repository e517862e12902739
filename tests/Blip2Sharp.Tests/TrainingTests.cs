using System.Globalization;
using System.Text.Json.Nodes;
using Blip2Sharp.Modeling;
using Blip2Sharp.Processing.Tokenizers;
using Blip2Sharp.Training;
using SkiaSharp;
using Xunit;
using static TorchSharp.torch;

namespace Blip2Sharp.Tests;

[Collection(GlobalRngCollection.Name)]
public class TrainingTests
{
    /// <summary>A small captioned dataset: one coloured shape per image, written as JSONL.</summary>
    internal static string MakeDataset(int count, int seed = 0)
    {
        string dir = Fixtures.TempDir();
        var colours = new (string Name, SKColor Color)[] { ("red", SKColors.Red), ("green", SKColors.Green), ("blue", SKColors.Blue), ("yellow", SKColors.Yellow) };
        var lines = new List<string>();
        var rng = new Random(seed);
        for (int i = 0; i < count; i++)
        {
            var (name, colour) = colours[i % colours.Length];
            bool circle = (i / colours.Length) % 2 == 0;
            using var bitmap = new SKBitmap(new SKImageInfo(40, 40, SKColorType.Rgba8888, SKAlphaType.Unpremul));
            using (var canvas = new SKCanvas(bitmap))
            {
                canvas.Clear(SKColors.White);
                using var paint = new SKPaint { Color = colour, IsAntialias = true };
                float x = rng.Next(12, 28), y = rng.Next(12, 28);
                if (circle) canvas.DrawCircle(x, y, 10, paint);
                else canvas.DrawRect(x - 10, y - 10, 20, 20, paint);
            }
            using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
            File.WriteAllBytes(Path.Combine(dir, $"img{i}.png"), data.ToArray());
            lines.Add(new JsonObject { ["image"] = $"img{i}.png", ["caption"] = $"a {name} {(circle ? "circle" : "square")}." }.ToJsonString());
        }
        File.WriteAllLines(Path.Combine(dir, "train.jsonl"), lines);
        return Path.Combine(dir, "train.jsonl");
    }

    private static long[,] ToArray(Tensor t)
    {
        var a = new long[t.shape[1], t.shape[2]];
        for (int i = 0; i < t.shape[1]; i++) for (int j = 0; j < t.shape[2]; j++) a[i, j] = t[0, i, j].item<long>();
        return a;
    }

    [Fact]
    public void TheThreeMasksElementByElement()
    {
        var text = tensor(new long[] { 1, 1, 0 }).unsqueeze(0); // 2 queries, 3 text tokens, the last one padding
        Assert.Equal(new long[,] { { 1, 1, 0, 0, 0 }, { 1, 1, 0, 0, 0 }, { 0, 0, 1, 1, 0 }, { 0, 0, 1, 1, 0 }, { 0, 0, 1, 1, 0 } }, ToArray(QFormerMasks.UniModal(2, text)));
        Assert.Equal(new long[,] { { 1, 1, 1, 1, 0 }, { 1, 1, 1, 1, 0 }, { 1, 1, 1, 1, 0 }, { 1, 1, 1, 1, 0 }, { 1, 1, 1, 1, 0 } }, ToArray(QFormerMasks.BiDirectional(2, text)));
        Assert.Equal(new long[,] { { 1, 1, 0, 0, 0 }, { 1, 1, 0, 0, 0 }, { 1, 1, 1, 0, 0 }, { 1, 1, 1, 1, 0 }, { 1, 1, 1, 1, 0 } }, ToArray(QFormerMasks.MultimodalCausal(2, text)));
    }

    [Fact]
    public void ItcLossAgainstValuesWorkedOutByHand()
    {
        // Image 0 has queries e1, e2; image 1 has (0.6, 0.8) and (−1, 0). Texts e1 and e2. temp 0.5.
        var image = tensor(new float[] { 1, 0, 0, 1, 0.6f, 0.8f, -1, 0 }).reshape(2, 2, 2);
        var textFeat = tensor(new float[] { 1, 0, 0, 1 }).reshape(2, 2);
        var (loss, simI2T, _) = Stage1Objective.ItcLoss(image, textFeat, tensor(0.5f));
        // max over queries / temp: [[1, 1], [0.6, 0.8]] / 0.5
        Assert.Equal(new float[] { 2, 2, 1.2f, 1.6f }, simI2T.data<float>().ToArray().Select(v => MathF.Round(v, 5)).ToArray());
        static double Smoothed(double[] logits, int target, double eps)
        {
            double lse = Math.Log(logits.Sum(Math.Exp));
            var nll = logits.Select(l => lse - l).ToArray();
            return (1 - eps) * nll[target] + eps * nll.Average();
        }
        double i2t = (Smoothed([2, 2], 0, 0.1) + Smoothed([1.2, 1.6], 1, 0.1)) / 2;
        double t2i = (Smoothed([2, 1.2], 0, 0.1) + Smoothed([2, 1.6], 1, 0.1)) / 2;
        Assert.Equal((i2t + t2i) / 2, loss.item<float>(), 5);
    }

    [Fact]
    public void HardNegativesAreNeverThePositiveAndFollowTheSimilarity()
    {
        var gen = new Generator(3);
        var sim = randn(new long[] { 5, 5 }, generator: gen) * 3;
        for (int k = 0; k < 200; k++)
        {
            var (negImage, negText) = Stage1Objective.SampleNegatives(sim, sim.t(), gen);
            for (int i = 0; i < 5; i++)
            {
                Assert.NotEqual(i, negImage[i]);
                Assert.NotEqual(i, negText[i]);
            }
        }
        // One off-diagonal similarity far above the rest is always the one drawn.
        var peaked = zeros(4, 4);
        for (int i = 0; i < 4; i++) peaked[i, (i + 1) % 4] = 50;
        var (img, txt) = Stage1Objective.SampleNegatives(peaked, peaked, gen);
        Assert.Equal(new long[] { 1, 2, 3, 0 }, img);
        Assert.Equal(new long[] { 1, 2, 3, 0 }, txt);
    }

    [Fact]
    public void OnlyTrainableParametersLearnAndFrozenOnesStayBitIdentical()
    {
        var model = Blip2ForImageTextRetrieval.FromPretrained(Fixtures.Dir("tiny-itm"));
        var tokenizer = Tokenizer.FromPretrained(Fixtures.Dir("tiny-itm"));
        using var objective = new Stage1Objective(model, tokenizer.BosTokenId!.Value, tokenizer.PadTokenId!.Value);
        ModelInit.Randomize(objective.ItgHead, 1);
        objective.TrainMode();
        // As LAVIS: the image encoder is frozen but its final LayerNorm (ln_vision) trains.
        static bool Trains(string visionName) => visionName.StartsWith("post_layernorm.");
        var frozen = model.VisionModel.named_parameters().Where(p => !Trains(p.name)).ToDictionary(p => p.name, p => p.parameter.clone());
        var before = model.QFormer.named_parameters().ToDictionary(p => p.name, p => p.parameter.clone());
        var x = Fixtures.Goldens("tiny-itm");
        var losses = objective.Forward(x["pixel_values"], x["input_ids"], x["attention_mask"], new Generator(1));
        losses.Total.backward();
        Assert.All(model.VisionModel.named_parameters(), p => Assert.Equal(Trains(p.name), p.parameter.grad is not null));
        Assert.Contains(model.QFormer.parameters(), p => p.grad is not null && p.grad.abs().sum().item<float>() > 0);
        Assert.NotNull(objective.Temp.grad);
        using var opt = new AdamW(objective.named_parameters().Select(p => (p.name, p.parameter)));
        Assert.Equal(["model.vision_model.post_layernorm.bias", "model.vision_model.post_layernorm.weight"],
            opt.Parameters.Where(p => p.Name.StartsWith("model.vision_model.")).Select(p => p.Name).Order());
        opt.Update(1e-3);
        foreach (var (name, p) in model.VisionModel.named_parameters().Where(p => !Trains(p.name)))
            Assert.True(Fixtures.SameBits(frozen[name], p), $"{name} changed");
        Assert.Contains(model.QFormer.named_parameters(), p => !Fixtures.SameBits(before[p.name], p.parameter));
    }

    [Fact]
    public void ThePromptAlignmentIsTheMeanSquaredDistanceToThePlacedTextsEmbeddings()
    {
        using var model = Blip2ForConditionalGeneration.FromPretrained(Fixtures.Dir("tiny-opt"));
        var tokenizer = Tokenizer.FromPretrained(Fixtures.Dir("tiny-opt"));
        model.eval();
        var x = Fixtures.Goldens("tiny-opt");
        string[] captions = ["a photo of a cat", "two dogs"];
        var plain = new Stage2Objective(model, tokenizer);
        var aligned = new Stage2Objective(model, tokenizer) { PromptAlignment = 2.5, PromptText = c => c == "two dogs" ? "dogs" : c };
        Assert.Equal(["loss", "loss_align"], aligned.Names);
        using var noGrad = no_grad();
        var parts = aligned.Losses(x["pixel_values"], captions);
        Assert.Equal(plain.Loss(x["pixel_values"], captions).item<float>(), parts["loss"].item<float>(), 6);

        // By hand: queries [B, Q, H] against the embeddings of [bos, pad, …, pad, text tokens].
        var prefix = model.ImagePrefix(x["pixel_values"]);
        int q = (int)prefix.shape[1];
        var rows = new[] { "a photo of a cat", "dogs" }.Select(t =>
        {
            var text = tokenizer.Encode(t, addSpecialTokens: false).Ids;
            return new[] { (long)tokenizer.BosTokenId!.Value }.Concat(Enumerable.Repeat((long)tokenizer.PadTokenId!.Value, q - 1 - text.Count)).Concat(text.Select(i => (long)i)).ToArray();
        }).ToArray();
        Assert.Equal(q, rows[1].Length);
        var target = model.EmbedTokens(tensor(rows.SelectMany(r => r).ToArray()).reshape(2, q));
        var p = prefix.data<float>().ToArray();
        var e = target.data<float>().ToArray();
        double sum = 0;
        for (int i = 0; i < p.Length; i++) sum += (p[i] - e[i]) * (double)(p[i] - e[i]);
        double expected = 2.5 * sum / (2 * q);
        Assert.Equal(expected, parts["loss_align"].item<float>(), expected * 1e-5);
        Assert.Equal(parts["loss"].item<float>() + parts["loss_align"].item<float>(), aligned.Loss(x["pixel_values"], captions).item<float>(), 5);
    }

    [Fact]
    public void ThePromptAlignmentIsForDecoderOnlyModelsAndNotNegative()
    {
        using var model = Blip2ForConditionalGeneration.FromPretrained(Fixtures.Dir("tiny-t5"));
        var objective = new Stage2Objective(model, Tokenizer.FromPretrained(Fixtures.Dir("tiny-t5"))) { PromptAlignment = 1 };
        var x = Fixtures.Goldens("tiny-t5");
        var e = Assert.Throws<ArgumentException>(() => objective.Loss(x["pixel_values"], ["a cat"]));
        Assert.Contains("decoder-only", e.Message);
        // The trainer refuses before its first step: no metrics file.
        string outDir = Path.Combine(Fixtures.TempDir(), "t5");
        var trainer = new Trainer(TrainStage.Stage2, Fixtures.Dir("tiny-t5"), ImageTextData.Load(MakeDataset(4)), outDir, new TrainConfig { MaxSteps = 2, BatchSize = 2, PromptAlignment = 1 });
        Assert.Contains("decoder-only", Assert.Throws<ArgumentException>(() => trainer.Run(resume: false)).Message);
        Assert.False(File.Exists(Path.Combine(outDir, "metrics.csv")));
        Assert.Throws<ArgumentException>(() => new TrainConfig { PromptAlignment = -1 }.Validate());
        string json = Path.Combine(Fixtures.TempDir(), "train.json");
        File.WriteAllText(json, "{\"prompt_alignment\": 0.5}");
        Assert.Equal(0.5, TrainConfig.Load(json).PromptAlignment);
    }

    [Fact]
    public void TheTrainCommandTakesThePromptAlignmentAndLogsItsLoss()
    {
        string data = MakeDataset(4), outDir = Path.Combine(Fixtures.TempDir(), "s2");
        var r = CliRunner.Run("train", "stage2", "--init", Fixtures.Dir("tiny-opt"), "--data", data, "--out", outDir,
            "--max-steps", "2", "--batch-size", "2", "--prompt-alignment", "0.5");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("loss_align=", r.Stderr);
        Assert.StartsWith("step,loss,loss_align,lr", File.ReadLines(Path.Combine(outDir, "metrics.csv")).First());
        // The command draws the chart (the library draws none): a PNG of the run's curves.
        var png = File.ReadAllBytes(Path.Combine(outDir, "metrics.png"));
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], png[..4]);
        Assert.Equal("itc", Cli.Commands.TrainCommand.ShortName("loss_itc"));
        Assert.Equal("loss", Cli.Commands.TrainCommand.ShortName("loss"));   // stage 2's one loss (once cut to a negative length)
    }

    private static List<double[]> Metrics(string outDir) =>
        File.ReadAllLines(Path.Combine(outDir, "metrics.csv")).Skip(1).Select(l => l.Split(',').Select(v => double.Parse(v, CultureInfo.InvariantCulture)).ToArray()).ToList();

    [Fact]
    public void AShortStage1ThenStage2RunLowersEveryLossAndItsCheckpointsLoad()
    {
        string data = MakeDataset(16);
        string s1 = Path.Combine(Fixtures.TempDir(), "s1");
        var cfg = new TrainConfig { MaxSteps = 40, BatchSize = 8, Lr = 2e-3, WarmupSteps = 0, LogEvery = 5, SaveEvery = 20, Seed = 5 };
        var log1 = new List<string>();
        string ck1 = new Trainer(TrainStage.Stage1, Fixtures.Dir("tiny-itm"), ImageTextData.Load(data), s1, cfg with { EvalEvery = 40, DropLastVisionLayers = 1 }) { ValData = ImageTextData.Load(data), Log = log1.Add, DrawMetrics = Blip2Sharp.Plots.MetricsChart.FromCsv }.Run(resume: false);
        Assert.Contains(log1, l => l.StartsWith("step 40: held-out retrieval R@1"));
        var m1 = Metrics(s1);
        for (int col = 1; col <= 3; col++) Assert.True(m1[^1][col] < m1[0][col], $"stage-1 loss column {col}: {m1[0][col]} → {m1[^1][col]}");
        Assert.True(File.Exists(Path.Combine(s1, "metrics.png")));
        string img = Path.Combine(Path.GetDirectoryName(data)!, "img0.png");
        var match = CliRunner.Run("match", "--model", ck1, "--image", img, "--text", "a red circle", "--json");
        Assert.True(match.ExitCode == 0, match.Stderr);

        string s2 = Path.Combine(Fixtures.TempDir(), "s2");
        var cfg2 = cfg with { MaxSteps = 30, EvalEvery = 30 };
        var log = new List<string>();
        string ck2 = new Trainer(TrainStage.Stage2, Fixtures.Dir("tiny-opt"), ImageTextData.Load(data), s2, cfg2) { QFormerFrom = ck1, ValData = ImageTextData.Load(data), Log = log.Add }.Run(resume: false);
        Assert.Contains(log, l => l.StartsWith("step 30: held-out loss") && l.Contains("samples: img"));
        var m2 = Metrics(s2);
        Assert.True(m2[^1][1] < m2[0][1], $"stage-2 loss: {m2[0][1]} → {m2[^1][1]}");
        var caption = CliRunner.Run("caption", img, "--model", ck2, "--max-new-tokens", "5", "--json");
        Assert.True(caption.ExitCode == 0, caption.Stderr);
    }

    [Fact]
    public void AnInterruptedRunResumesToTheSameLosses()
    {
        string data = MakeDataset(12, seed: 1);
        var cfg = new TrainConfig { MaxSteps = 16, BatchSize = 4, Lr = 1e-3, WarmupSteps = 4, LogEvery = 1, SaveEvery = 8, Seed = 9 };
        string straight = Path.Combine(Fixtures.TempDir(), "straight");
        new Trainer(TrainStage.Stage1, Fixtures.Dir("tiny-itm"), ImageTextData.Load(data), straight, cfg).Run(resume: false);

        string broken = Path.Combine(Fixtures.TempDir(), "broken");
        using var cts = new CancellationTokenSource();
        Assert.ThrowsAny<OperationCanceledException>(() =>
            new Trainer(TrainStage.Stage1, Fixtures.Dir("tiny-itm"), ImageTextData.Load(data), broken, cfg).Run(false, p => { if (p.Step == 11) cts.Cancel(); }, cts.Token));
        Assert.Equal(Path.Combine(broken, "checkpoint-8"), Trainer.LatestCheckpoint(broken));
        Assert.Empty(Directory.GetDirectories(broken, ".tmp-*"));
        new Trainer(TrainStage.Stage1, Fixtures.Dir("tiny-itm"), ImageTextData.Load(data), broken, cfg).Run(resume: true);

        var a = Metrics(straight);
        var b = Metrics(broken);
        Assert.Equal(a.Select(r => r[0]), b.Select(r => r[0]));
        for (int i = 0; i < a.Count; i++)
            for (int c = 1; c <= 3; c++) Assert.True(Math.Abs(a[i][c] - b[i][c]) <= 1e-5, $"step {a[i][0]} column {c}: {a[i][c]} vs {b[i][c]}");
    }

    [Fact]
    public void EmptyCaptionsAreDroppedAndCountedAndUnreadableImagesSkipped()
    {
        string data = MakeDataset(8);
        var lines = File.ReadAllLines(data).ToList();
        lines.Add("{\"image\": \"img0.png\", \"caption\": \" ... \"}");
        lines.Add("{\"image\": \"missing.png\", \"caption\": \"a ghost\"}");
        File.WriteAllLines(data, lines);
        var d = ImageTextData.Load(data);
        Assert.Equal(1, d.EmptyCaptions);
        Assert.Equal(9, d.Pairs.Count);
        var log = new List<string>();
        string outDir = Path.Combine(Fixtures.TempDir(), "o");
        new Trainer(TrainStage.Stage2, Fixtures.Dir("tiny-opt"), d, outDir, new TrainConfig { MaxSteps = 6, BatchSize = 3, WarmupSteps = 0, LogEvery = 1, SaveEvery = 6 }) { Log = log.Add }.Run(false);
        Assert.Contains(log, l => l.Contains("empty caption were dropped"));
        Assert.Contains(log, l => l.Contains("unreadable images were skipped"));
        Assert.Equal(6, Metrics(outDir).Count);
    }

    [Fact]
    public void TheQFormerCanStartFromABertCheckpoint()
    {
        // A BERT folder in the bert-base-uncased layout, made of tiny-itm's own Q-Former weights under BERT's names.
        using var reader = Loading.CheckpointReader.Open(Fixtures.Dir("tiny-itm"));
        var bert = new Dictionary<string, Tensor>
        {
            ["bert.embeddings.word_embeddings.weight"] = reader.Read("embeddings.word_embeddings.weight")[..261],
            ["bert.embeddings.position_embeddings.weight"] = reader.Read("embeddings.position_embeddings.weight"),
            ["bert.embeddings.LayerNorm.weight"] = reader.Read("qformer.layernorm.weight"),
            ["bert.embeddings.LayerNorm.bias"] = reader.Read("qformer.layernorm.bias"),
        };
        for (int i = 0; i < 2; i++)
        {
            string q = $"qformer.encoder.layer.{i}.", b = $"bert.encoder.layer.{i}.";
            foreach (var w in new[] { "weight", "bias" })
            {
                foreach (var m in new[] { "query", "key", "value" }) bert[$"{b}attention.self.{m}.{w}"] = reader.Read($"{q}attention.attention.{m}.{w}");
                bert[$"{b}attention.output.dense.{w}"] = reader.Read($"{q}attention.output.dense.{w}");
                bert[$"{b}attention.output.LayerNorm.{w}"] = reader.Read($"{q}attention.output.LayerNorm.{w}");
                bert[$"{b}intermediate.dense.{w}"] = reader.Read($"{q}intermediate.dense.{w}");
                bert[$"{b}output.dense.{w}"] = reader.Read($"{q}output.dense.{w}");
                bert[$"{b}output.LayerNorm.{w}"] = reader.Read($"{q}output.LayerNorm.{w}");
            }
        }
        string dir = Fixtures.TempDir();
        Loading.SafetensorsWriter.Save(Path.Combine(dir, "model.safetensors"), bert);

        var model = Blip2ForImageTextRetrieval.FromPretrained(Fixtures.Dir("tiny-itm"));
        using var objective = new Stage1Objective(model, 261, 0);
        int copied = BertInit.Apply(objective, dir, seed: 3);
        Assert.Equal(4 + 2 * 2 * (3 + 1 + 1 + 2 + 4), copied); // embeddings; per layer and per weight/bias: q k v, attention dense, LN, 2 × intermediate, 2 × (dense, LN)
        var after = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        Assert.True(Fixtures.SameBits(reader.Read("qformer.encoder.layer.1.output.dense.weight"), after["qformer.encoder.layer.1.output_query.dense.weight"])); // BERT FFN → query FFN too
        Assert.True(Fixtures.SameBits(reader.Read("embeddings.word_embeddings.weight")[..261], after["embeddings.word_embeddings.weight"][..261]));
        Assert.False(Fixtures.SameBits(reader.Read("qformer.encoder.layer.0.crossattention.attention.key.weight"), after["qformer.encoder.layer.0.crossattention.attention.key.weight"])); // random
        Assert.False(Fixtures.SameBits(reader.Read("query_tokens"), after["query_tokens"]));
    }

    [Fact]
    public void ADatasetSmallerThanOneBatchIsAClearError()
    {
        var e = Assert.Throws<ArgumentException>(() => new Trainer(TrainStage.Stage1, Fixtures.Dir("tiny-itm"), ImageTextData.Load(MakeDataset(3)), Fixtures.TempDir(), new TrainConfig { BatchSize = 8 }));
        Assert.Contains("fewer than one batch", e.Message);
    }
}
