using System.Globalization;

namespace Blip2Sharp.Demo;

/// <summary>report.md of a demo run: the numbers against the bars, the ablation without stage 1, the training curves and a grid of test scenes.</summary>
public static class DemoReport
{
    public const double CaptionBar = 0.90, VqaBar = 0.80, RetrievalBar = 0.80;

    /// <summary>mm:ss, or h:mm:ss from an hour on (a contended run once printed 1:00:37 as "00:37").</summary>
    public static string Clock(TimeSpan t) => t.TotalHours >= 1 ? $"{(int)t.TotalHours}:{t:mm\\:ss}" : $"{t:mm\\:ss}";

    public static string Write(string workDir, long seed, long testSeed, DemoMetrics full, DemoMetrics? holdout,
        DemoMetrics? ablation, IReadOnlyList<(string Phase, TimeSpan Time)> timings, double promptAlignment = 0)
    {
        static string P(double? x) => x is { } v ? (100 * v).ToString("0.0", CultureInfo.InvariantCulture) + " %" : "—";
        static string Bar(double? x, double bar) => x is { } v ? (v >= bar ? "meets" : "below") : "";
        var total = timings.Aggregate(TimeSpan.Zero, (a, t) => a + t.Time);
        var md = new List<string>
        {
            "# BLIP-2 in miniature: trained from scratch on synthetic scenes",
            "",
            $"Made by `blip2 demo train --seed {seed}` on this machine in {Clock(total)} (all phases below); evaluated on {full.Images} freshly generated, distinct test scenes (seed {testSeed})",
            "that share their caption-level key (background, and each object's size, colour, shape and column) with no training scene.",
            "The image encoder and the language model were pre-trained alone (no text for the ViT, no image for OPT) and then frozen; only the Q-Former,",
            "its queries and the projection were trained with images. Stage 2 saw captions only: every image-question pair below is zero-shot.",
        };
        if (promptAlignment > 0)
            md.AddRange(
            [
                "",
                "Not in the paper: the language model read each description where BLIP-2 puts the soft prompt (bos, padding, then the description,",
                "ending at the last query position), and stage 2 adds a prompt alignment (weight " + promptAlignment.ToString(CultureInfo.InvariantCulture) + "): the squared distance from",
                "each projected query to the word embedding of the scene's first caption so placed. The frozen LM answers questions about a written",
                "description; without the alignment it did not answer them about the soft prompt, which stage 2 shapes only to yield captions.",
            ]);
        md.AddRange(
        [
            "",
            "## Results",
            "",
            "| model | caption accuracy | zero-shot VQA | text→image R@1 | image→text R@1 | text→image R@5 | image→text R@5 |",
            "|---|---|---|---|---|---|---|",
        ]);
        md.Add($"| BLIP-2 (stage 1 + stage 2) | {P(full.CaptionAccuracy)} | {P(full.VqaAccuracy)} | {P(full.RetrievalT2iR1)} | {P(full.RetrievalI2tR1)} | {P(full.RetrievalT2iR5)} | {P(full.RetrievalI2tR5)} |");
        string heldOut = $"{Scene.HeldOut.Color} {Scene.HeldOut.Shape.ToString().ToLowerInvariant()}";
        if (holdout is not null)
            md.Add($"| held-out pair: {holdout.Images} scenes with a {heldOut} | {P(holdout.CaptionAccuracy)} | {P(holdout.VqaAccuracy)} | {P(holdout.RetrievalT2iR1)} | {P(holdout.RetrievalI2tR1)} | {P(holdout.RetrievalT2iR5)} | {P(holdout.RetrievalI2tR5)} |");
        if (ablation is not null)
            md.Add($"| ablation: stage 2 without stage 1 | {P(ablation.CaptionAccuracy)} | {P(ablation.VqaAccuracy)} | — | — | — | — |");
        md.AddRange(
        [
            $"| bar | ≥ {P(CaptionBar)} ({Bar(full.CaptionAccuracy, CaptionBar)}) | ≥ {P(VqaBar)} ({Bar(full.VqaAccuracy, VqaBar)}) | ≥ {P(RetrievalBar)} ({Bar(full.RetrievalT2iR1, RetrievalBar)}) | | | |",
            "",
            "A caption counts when it names every object with its size, colour, shape and place (left, middle, right) and no other object.",
            "VQA: the paper's prompt \"Question: {} Answer:\", greedy, on the colour, shape and count questions of the test scenes; an answer counts when it",
            "equals the expected one after the official VQA evaluation's normalisation (case, punctuation, articles, number words); by kind: " +
                string.Join(", ", full.VqaByKind.Select(kv => $"{kv.Key} {P(kv.Value)}")) +
                (ablation is null ? "." : $" (without stage 1: {string.Join(", ", ablation.VqaByKind.Select(kv => $"{kv.Key} {P(kv.Value)}"))})."),
            "Retrieval: every caption of every test scene (three phrasings) against all test images, ITC top 16 re-ranked by ITM, as LAVIS does.",
            "The ablation has no retrieval numbers: without stage 1 there are no trained retrieval heads.",
            $"Held-out pair: no scene the demo trained on (images or texts, any phase) holds a {heldOut}; each of these test scenes holds one,",
            "so their figures measure how the model composes a colour and a shape it only saw apart, not memory (retrieval ranks these scenes among themselves)." +
                (holdout is null ? "" : " By kind: " + string.Join(", ", holdout.VqaByKind.Select(kv => $"{kv.Key} {P(kv.Value)}")) + "."),
            "",
            "## Time",
            "",
            "| phase | time |",
            "|---|---|",
        ]);
        md.AddRange(timings.Select(t => $"| {t.Phase} | {Clock(t.Time)} |"));
        md.AddRange(
        [
            $"| total | {Clock(total)} |",
            "",
            "## Training curves",
            "",
            "Language model, text only (loss per token) and image encoder, scene attributes per cell (sum of the heads' losses):",
            "",
            "![language model](curves/language_model.png)",
            "![image encoder](curves/image_encoder.png)",
            "",
            "Stage 1 (ITC, ITM, ITG, label smoothing 0.1) and stage 2 (language-modelling loss on the caption" + (promptAlignment > 0 ? ", prompt alignment" : "") + "):",
            "",
            "![stage 1](stage1/metrics.png)",
            "![stage 2](stage2/metrics.png)",
            "",
            "## Test scenes",
            "",
            "![test scenes with their generated captions and answers](grid.png)",
            "",
        ]);
        DemoGrid.Write(Path.Combine(workDir, "grid.png"), [.. full.Samples.Select(s => DemoGrid.Scene(File.ReadAllBytes(s.Image), s.Caption, s.CaptionCorrect,
            s.Answers.Select(a => (a.Question, a.Answer, a.Expected, DemoEvaluation.AnswerCorrect(a.Answer, a.Expected)))))]);
        string path = Path.Combine(workDir, "report.md");
        File.WriteAllLines(path, md);
        return path;
    }
}
