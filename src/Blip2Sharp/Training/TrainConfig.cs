using System.Text.Json.Serialization;
using Blip2Sharp.Configuration;

namespace Blip2Sharp.Training;

/// <summary>
/// Training settings (a JSON file with these snake_case names; command-line flags override it). Defaults follow
/// LAVIS's released BLIP-2 configs (lavis/projects/blip2/train/pretrain_stage1.yaml, pretrain_stage2.yaml): lr 1e-4,
/// min_lr 1e-5, warmup_lr 1e-6, warm-up 5,000 steps in stage 1 and 2,000 in stage 2, weight decay 0.05, AdamW betas
/// (0.9, 0.999), no gradient clipping, the linear_warmup_cosine_lr schedule; the batch size is this machine's (LAVIS:
/// 100 and 64 on GPUs). The paper states β2 = 0.98: set beta2 to follow it.
/// </summary>
public sealed record TrainConfig
{
    [JsonPropertyName("max_steps")] public int MaxSteps { get; init; } = 1000;
    [JsonPropertyName("batch_size")] public int BatchSize { get; init; } = 8;
    [JsonPropertyName("lr")] public double Lr { get; init; } = 1e-4;
    [JsonPropertyName("min_lr")] public double MinLr { get; init; } = 1e-5;
    [JsonPropertyName("warmup_lr")] public double WarmupLr { get; init; } = 1e-6;
    /// <summary>Warm-up steps (epoch 0 only with LAVIS's schedule); null: LAVIS's 5,000 (stage 1) or 2,000 (stage 2).</summary>
    [JsonPropertyName("warmup_steps")] public int? WarmupSteps { get; init; }
    [JsonPropertyName("weight_decay")] public double WeightDecay { get; init; } = 0.05;
    [JsonPropertyName("beta1")] public double Beta1 { get; init; } = 0.9;
    [JsonPropertyName("beta2")] public double Beta2 { get; init; } = 0.999;
    [JsonPropertyName("grad_accumulation")] public int GradAccumulation { get; init; } = 1;
    /// <summary>Gradient-norm clipping; 0 (LAVIS clips nothing) by default.</summary>
    [JsonPropertyName("clip_grad_norm")] public double ClipGradNorm { get; init; }
    /// <summary>
    /// "linear_warmup_cosine_lr" (LAVIS: warm-up per step in epoch 0, cosine per epoch, an epoch being one pass over
    /// the pairs) or "cosine_per_step" (warm-up, then a cosine per step to min_lr at max_steps).
    /// </summary>
    [JsonPropertyName("lr_schedule")] public string LrSchedule { get; init; } = "linear_warmup_cosine_lr";
    /// <summary>
    /// LAVIS's prompt (stage 2): OPT learns "{prompt} {caption}" with the prompt's tokens masked; Flan-T5's encoder
    /// text. "" in pre-training; "a photo of" in LAVIS's COCO caption fine-tuning.
    /// </summary>
    [JsonPropertyName("prompt")] public string Prompt { get; init; } = "";
    [JsonPropertyName("log_every")] public int LogEvery { get; init; } = 10;
    [JsonPropertyName("save_every")] public int SaveEvery { get; init; } = 200;
    [JsonPropertyName("eval_every")] public int EvalEvery { get; init; }
    [JsonPropertyName("seed")] public long Seed { get; init; } = 42;
    /// <summary>Captions longer than this many tokens are cut (stated in the log): 32, as LAVIS's max_txt_len.</summary>
    [JsonPropertyName("max_text_tokens")] public int MaxTextTokens { get; init; } = 32;
    [JsonPropertyName("augment")] public bool Augment { get; init; } = true;
    /// <summary>Decode the next batch's images on other threads while a step trains. Off, nothing allocates managed
    /// memory during native calls, which keeps TorchSharp's Scalar race (see NativeScalarRace) from striking.</summary>
    [JsonPropertyName("prefetch")] public bool Prefetch { get; init; } = true;
    /// <summary>Stage 1: frozen vision layers skipped at the end (the paper drops EVA-CLIP's last one; the official
    /// BLIP-2 weights already have it removed, so 0 for them).</summary>
    [JsonPropertyName("drop_last_vision_layers")] public int DropLastVisionLayers { get; init; }
    /// <summary>Stage 2, decoder-only LMs: weight of the prompt alignment (see Stage2Objective.PromptAlignment); 0, as
    /// in the paper, by default.</summary>
    [JsonPropertyName("prompt_alignment")] public double PromptAlignment { get; init; }

    public static TrainConfig Load(string path) =>
        ConfigJson.Bind<TrainConfig>(ConfigJson.ReadObject(path), path, new ConfigWarnings());

    public void Validate()
    {
        void Check(bool ok, string m) { if (!ok) throw new ArgumentException(m); }
        Check(MaxSteps >= 1, "max_steps must be at least 1.");
        Check(BatchSize >= 1, "batch_size must be at least 1.");
        Check(Lr > 0 && MinLr >= 0 && WarmupLr >= 0, "learning rates must be positive.");
        Check(WarmupSteps is null or >= 0, "warmup_steps must be 0 or more.");
        Check(LrSchedule is "linear_warmup_cosine_lr" or "cosine_per_step",
            $"lr_schedule must be linear_warmup_cosine_lr or cosine_per_step (got '{LrSchedule}').");
        Check(ClipGradNorm >= 0, "clip_grad_norm must be 0 (off) or positive.");
        Check(GradAccumulation >= 1, "grad_accumulation must be at least 1.");
        Check(LogEvery >= 1 && SaveEvery >= 1, "log_every and save_every must be at least 1.");
        Check(MaxTextTokens >= 4, "max_text_tokens must be at least 4.");
        Check(PromptAlignment >= 0, "prompt_alignment must be 0 or more.");
    }
}
