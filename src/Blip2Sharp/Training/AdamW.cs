using TorchSharp;
using static TorchSharp.torch;
using Parameter = TorchSharp.Modules.Parameter;

namespace Blip2Sharp.Training;

/// <summary>
/// AdamW with decoupled weight decay (torch.optim.AdamW as LAVIS uses it, lavis/runners/runner_base.py:113), written
/// out so that its state (step, first and second moments) is saved and restored exactly with a checkpoint. Weight
/// decay as LAVIS's Blip2Base.get_optimizer_params groups it (lavis/models/blip2_models/blip2.py:116): none for 1-D
/// tensors (biases, LayerNorm weights) and names ending in ".bias"; every other trainable tensor decays, the query
/// tokens, the embeddings and the 0-dimensional temperature included.
/// </summary>
public sealed class AdamW : IDisposable
{
    private readonly List<(string Name, Parameter Param, bool Decay)> _params;
    private readonly Dictionary<string, (Tensor M, Tensor V)> _state = [];

    public double Beta1 { get; init; } = 0.9;
    public double Beta2 { get; init; } = 0.999;
    public double Eps { get; init; } = 1e-8;
    public double WeightDecay { get; init; } = 0.05;
    public long Step { get; private set; }

    public AdamW(IEnumerable<(string Name, Parameter Param)> parameters)
    {
        _params = parameters.Where(p => p.Param.requires_grad)
            .Select(p => (p.Name, p.Param, Decay: p.Param.dim() != 1 && !p.Name.EndsWith(".bias", StringComparison.Ordinal)))
            .ToList();
    }

    public IReadOnlyList<(string Name, Parameter Param, bool Decay)> Parameters => _params;

    /// <remarks>
    /// Every read of p.grad makes a new Tensor wrapper. Outside a dispose scope nothing keeps that wrapper alive once
    /// its handle has been passed to native code, so the GC could finalize it (deleting the native handle) while
    /// zero_ still ran on it: the use-after-free that crashed stage 2 with SIGSEGV in THSTensor_zeros_out (the
    /// trainer zeroes gradients outside its per-batch scope). The scope roots the wrappers and frees them at the end.
    /// </remarks>
    public void ZeroGrad()
    {
        using var scope = NewDisposeScope();
        foreach (var (_, p, _) in _params) p.grad?.zero_();
    }

    public void Update(double lr)
    {
        using var noGrad = no_grad();
        Step++;
        double bc1 = 1 - Math.Pow(Beta1, Step), bc2 = 1 - Math.Pow(Beta2, Step);
        // Scalars are created and disposed explicitly: TorchSharp's implicitly converted Scalars can be finalized by
        // the GC while a native call still uses them (dotnet/TorchSharp#1434), which corrupts long training runs.
        using var decayFactor = (1 - lr * WeightDecay).ToScalar();
        using var beta1 = Beta1.ToScalar();
        using var beta2 = Beta2.ToScalar();
        using var oneMinusBeta1 = (1 - Beta1).ToScalar();
        using var oneMinusBeta2 = (1 - Beta2).ToScalar();
        using var invBc2 = (1 / bc2).ToScalar();
        using var eps = Eps.ToScalar();
        using var stepSize = (-lr / bc1).ToScalar();
        foreach (var (name, p, decay) in _params)
        {
            using var scope = NewDisposeScope(); // roots the gradient's wrapper while native code uses it (see ZeroGrad)
            var g = p.grad;
            if (g is null) continue;
            if (!_state.TryGetValue(name, out var s))
            {
                s = (zeros_like(p).DetachFromDisposeScope(), zeros_like(p).DetachFromDisposeScope());
                _state[name] = s;
            }
            if (decay && WeightDecay > 0) p.mul_(decayFactor);
            s.M.mul_(beta1).add_(g, oneMinusBeta1);
            s.V.mul_(beta2).addcmul_(g, g, oneMinusBeta2);
            var denom = s.V.mul(invBc2).sqrt_().add_(eps);
            p.addcdiv_(s.M, denom, stepSize);
        }
    }

    /// <summary>State tensors named exp_avg.NAME / exp_avg_sq.NAME, and the step count.</summary>
    public Dictionary<string, Tensor> StateDict()
    {
        var d = new Dictionary<string, Tensor>();
        foreach (var (name, (m, v)) in _state)
        {
            d["exp_avg." + name] = m;
            d["exp_avg_sq." + name] = v;
        }
        d["step"] = tensor(new[] { Step });
        return d;
    }

    public void LoadStateDict(IReadOnlyDictionary<string, Tensor> d)
    {
        Step = d.TryGetValue("step", out var st) ? st.data<long>()[0] : 0;
        using var scope = NewDisposeScope(); // roots the intermediate of to().clone() (see ZeroGrad)
        foreach (var (name, p, _) in _params)
        {
            if (d.TryGetValue("exp_avg." + name, out var m) && d.TryGetValue("exp_avg_sq." + name, out var v))
                _state[name] = (m.to(p.device).clone().DetachFromDisposeScope(), v.to(p.device).clone().DetachFromDisposeScope());
        }
    }

    public void Dispose()
    {
        foreach (var (m, v) in _state.Values) { m.Dispose(); v.Dispose(); }
    }
}

/// <summary>
/// LAVIS's linear_warmup_cosine_lr (LinearWarmupCosineLRScheduler, lavis/common/optims.py:57), stepped before every
/// iteration: in epoch 0 a linear warm-up per step from warmup_lr to lr (lavis/common/optims.py:130), then flat until
/// the epoch ends; from epoch 1 on a cosine per epoch, constant within it (lavis/common/optims.py:122), which never
/// reaches min_lr (the last epoch is max_epoch − 1).
/// </summary>
public sealed record LavisLrSchedule(double Lr, double MinLr, double WarmupLr, int WarmupSteps, int MaxEpochs)
{
    public double At(int epoch, int stepInEpoch) => epoch == 0
        ? Math.Min(Lr, WarmupLr + (Lr - WarmupLr) * stepInEpoch / Math.Max(WarmupSteps, 1))
        : (Lr - MinLr) * 0.5 * (1 + Math.Cos(Math.PI * epoch / MaxEpochs)) + MinLr;

    /// <summary>The rate at a step counted from 0 over epochs of stepsPerEpoch steps.</summary>
    public double AtStep(int step, int stepsPerEpoch) => At(step / stepsPerEpoch, step % stepsPerEpoch);
}

/// <summary>
/// Linear warm-up from warmup_lr to lr, then cosine decay per step to min_lr at max_steps (not LAVIS's: the demo's
/// recipe, lr_schedule "cosine_per_step", and the unimodal pre-training).
/// </summary>
public sealed record LrSchedule(double Lr, double MinLr, double WarmupLr, int WarmupSteps, int MaxSteps)
{
    public double At(int step)
    {
        if (step < WarmupSteps) return WarmupLr + (Lr - WarmupLr) * step / Math.Max(1, WarmupSteps);
        double progress = (double)(step - WarmupSteps) / Math.Max(1, MaxSteps - WarmupSteps);
        return MinLr + (Lr - MinLr) * 0.5 * (1 + Math.Cos(Math.PI * Math.Min(1.0, progress)));
    }
}
