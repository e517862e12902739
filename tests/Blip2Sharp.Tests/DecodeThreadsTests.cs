using Blip2Sharp.Modeling.Layers;
using Xunit;

namespace Blip2Sharp.Tests;

/// <summary>Alone: the workers are process-wide, and another test's job holding them changes which thread runs what.</summary>
[Collection(ProcessWideSwitchesCollection.Name)]
public class DecodeThreadsTests
{
    [Fact]
    public void EveryPartRunsOnceWhetherTheWorkersSpinOrSleep()
    {
        var rng = new Random(3);
        int onWorkers = 0, multiPart = 0;
        for (int job = 0; job < 400; job++)
        {
            int parts = 1 + job % 3;
            var runs = new int[parts];
            var threads = new int[parts];
            DecodeThreads.For(parts, p =>
            {
                Interlocked.Increment(ref runs[p]);
                threads[p] = Environment.CurrentManagedThreadId;
            });
            Assert.All(runs, r => Assert.Equal(1, r));
            Assert.Equal(Environment.CurrentManagedThreadId, threads[0]);       // part 0 on the caller
            if (parts > 1)
            {
                multiPart++;
                if (threads[0] != threads[1]) onWorkers++;
            }
            if (job % 40 == 0) Thread.Sleep(5);                                  // longer than the spin: the workers sleep
            else if (job % 3 == 0) Thread.SpinWait(rng.Next(2000));
        }
        Assert.Equal(multiPart, onWorkers);                                     // part 1 never on the caller
    }

    [Fact]
    public async Task AJobDoesNotWaitForAnotherThreadsJob()
    {
        using var release = new ManualResetEventSlim();
        using var holding = new ManualResetEventSlim();
        var first = Task.Run(() => DecodeThreads.For(2, p =>
        {
            if (p != 0) return;
            holding.Set();
            release.Wait(TimeSpan.FromSeconds(30));
        }));
        Assert.True(holding.Wait(TimeSpan.FromSeconds(30)));
        int sum = 0;
        // The first job holds the workers until released: this one runs on its own thread meanwhile.
        var second = Task.Run(() => DecodeThreads.For(2, p => Interlocked.Add(ref sum, p + 1)));
        Assert.Same(second, await Task.WhenAny(second, Task.Delay(TimeSpan.FromSeconds(10))));
        Assert.Equal(3, sum);
        release.Set();
        await first;
    }

    [Fact]
    public void AWorkersExceptionReachesTheCallerAndTheNextJobRuns()
    {
        var e = Assert.Throws<AggregateException>(() => DecodeThreads.For(2, p =>
        {
            if (p == 1) throw new InvalidOperationException("part 1 failed");
        }));
        Assert.Equal("part 1 failed", e.InnerException!.Message);
        int sum = 0;
        DecodeThreads.For(2, p => Interlocked.Add(ref sum, p + 1));
        Assert.Equal(3, sum);
    }

    [Fact]
    public void AJobStartedInsideAJobRunsOnItsCaller()
    {
        var inner = new int[2, 2];
        DecodeThreads.For(2, p => DecodeThreads.For(2, q => inner[p, q] = Environment.CurrentManagedThreadId));
        Assert.Equal(inner[0, 0], inner[0, 1]);
        Assert.Equal(inner[1, 0], inner[1, 1]);
    }
}
