using Blip2Sharp.Training;
using static TorchSharp.torch;
using Parameter = TorchSharp.Modules.Parameter;

namespace Blip2Sharp.Demo;

/// <summary>The loop both unimodal pre-trainings share: AdamW, warm-up then cosine, gradient clipping at 1.</summary>
internal static class PretrainLoop
{
    /// <summary>Runs <paramref name="steps"/> updates of the loss lossAt(step) builds; returns the mean loss of the first and the last 10 % of steps.</summary>
    public static (double First, double Last) Run(IEnumerable<(string, Parameter)> parameters, int steps, double lr, double weightDecay,
        Func<int, Tensor> lossAt, Action<int, double>? progress)
    {
        using var optimizer = new AdamW(parameters) { WeightDecay = weightDecay, Beta2 = 0.98 };  // the demo's pre-training recipe
        var schedule = new LrSchedule(lr, lr / 10, lr / 100, Math.Max(1, steps / 20), steps);
        var losses = new List<double>();
        for (int step = 0; step < steps; step++)
        {
            using var scope = NewDisposeScope();
            // Nothing is applied before the update, so a step hit by the Scalar race is repeated (with a new batch).
            float value = NativeScalarRace.Retry(() =>
            {
                var loss = lossAt(step);
                optimizer.ZeroGrad();
                loss.backward();
                nn.utils.clip_grad_norm_(optimizer.Parameters.Select(p => p.Param), 1.0);
                return loss.item<float>();
            });
            optimizer.Update(schedule.At(step));
            losses.Add(value);
            progress?.Invoke(step + 1, losses[^1]);
        }
        int tenth = Math.Max(1, steps / 10);
        return (losses.Take(tenth).Average(), losses.Skip(losses.Count - tenth).Average());
    }
}
