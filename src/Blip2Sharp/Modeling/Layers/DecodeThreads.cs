using System.Diagnostics;

namespace Blip2Sharp.Modeling.Layers;

/// <summary>
/// Fork-join for the one-row products of decoding (<see cref="FloatGemv"/>, <see cref="Int8Weight"/>): the calling
/// thread takes part 0 and long-lived workers the others. A worker spins for a short while after each job before it
/// sleeps, because decoding calls come every few tens of microseconds, between small libtorch ops, and waking a
/// sleeping thread-pool thread costs far more than that on a virtual machine (measured on blip2-opt-2.7b int8, 2 cores:
/// the linear layers took 46–66 ms per token back to back and about 20 ms more when the pool's worker had to be woken
/// between libtorch ops). One job runs at a time; a job started from inside a job, or while another thread's job
/// runs, runs on its caller alone (no process-wide wait).
/// </summary>
public static class DecodeThreads
{
    /// <summary>How long an idle worker spins before it sleeps.</summary>
    private static readonly long SpinTicks = Stopwatch.Frequency / 500; // 2 ms

    private static readonly Lock Gate = new();
    private static readonly List<Worker> Workers = [];
    private static Job? _current;
    [ThreadStatic] private static bool _inJob;

    /// <summary>One published job: immutable but for the count of parts still running and the first failure.</summary>
    private sealed class Job(Action<int> body, int parts)
    {
        public readonly Action<int> Body = body;
        public readonly int Parts = parts;
        public int Remaining = parts - 1;
        public Exception? Failure;
    }

    /// <summary>Runs body(0) … body(parts - 1), part 0 on the calling thread; returns when all have finished.</summary>
    public static void For(int parts, Action<int> body)
    {
        // Another thread's job holds the workers: run this one on the caller alone rather than wait for it, so that
        // generations on several threads never queue behind one another here.
        if (parts <= 1 || _inJob || !Gate.TryEnter())
        {
            for (int p = 0; p < parts; p++) body(p);
            return;
        }
        try
        {
            while (Workers.Count < parts - 1) Workers.Add(new Worker(Workers.Count + 1, _current));
            var job = new Job(body, parts);
            Interlocked.Exchange(ref _current, job);                   // publish (a full fence)
            foreach (var w in Workers) w.WakeIfAsleep();
            _inJob = true;
            try
            {
                body(0);
            }
            finally
            {
                _inJob = false;
                var spin = new SpinWait();
                while (Volatile.Read(ref job.Remaining) > 0) spin.SpinOnce(sleep1Threshold: -1);
            }
            if (job.Failure is { } e) throw new AggregateException(e);
        }
        finally
        {
            Gate.Exit();
        }
    }

    /// <summary>
    /// Splits [0, count) into one contiguous range per libtorch thread and runs body(start, end) on each, part 0 on the
    /// calling thread (the output rows of a one-row product: each thread streams its own share of the weight).
    /// </summary>
    public static void ForRanges(long count, Action<long, long> body)
    {
        int threads = Math.Max(1, TorchSharp.torch.get_num_threads());
        long chunk = (count + threads - 1) / threads;
        For(threads, t => body(Math.Min(count, t * chunk), Math.Min(count, (t + 1) * chunk)));
    }

    private sealed class Worker
    {
        private readonly int _index;
        private readonly SemaphoreSlim _wake = new(0);
        private readonly Job? _seenAtStart;
        private int _asleep;

        /// <param name="index">The part of each job this worker runs.</param>
        /// <param name="seen">The job published when the worker was made (its thread may start after the next one is).</param>
        public Worker(int index, Job? seen)
        {
            _index = index;
            _seenAtStart = seen;
            new Thread(Loop) { IsBackground = true, Name = $"blip2-decode-{index}" }.Start();
        }

        public void WakeIfAsleep()
        {
            if (Interlocked.Exchange(ref _asleep, 0) == 1) _wake.Release();
        }

        private void Loop()
        {
            _inJob = true;
            var seen = _seenAtStart;
            while (true)
            {
                long idleSince = Stopwatch.GetTimestamp();
                var spin = new SpinWait();
                Job? job;
                while ((job = Volatile.Read(ref _current)) == seen)
                {
                    if (Stopwatch.GetTimestamp() - idleSince < SpinTicks)
                    {
                        spin.SpinOnce(sleep1Threshold: -1);
                        continue;
                    }
                    // Sleep: flag first (a full fence), then look once more, so that a job published in between is
                    // not missed; a wake-up that comes anyway is harmless, the loop looks again.
                    Interlocked.Exchange(ref _asleep, 1);
                    if (Volatile.Read(ref _current) == seen) _wake.Wait();
                    Interlocked.Exchange(ref _asleep, 0);
                    idleSince = Stopwatch.GetTimestamp();
                }
                seen = job;
                if (job is null || _index >= job.Parts) continue;
                try
                {
                    job.Body(_index);
                }
                catch (Exception e)
                {
                    job.Failure ??= e;
                }
                Interlocked.Decrement(ref job.Remaining);
            }
        }
    }
}
