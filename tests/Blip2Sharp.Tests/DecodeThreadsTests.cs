using Blip2Sharp.Modeling.Layers;
using Xunit;

namespace Blip2Sharp.Tests;

public class DecodeThreadsTests
{
    [Fact]
    public void EveryPartRunsOnceWhetherTheWorkersSpinOrSleep()
    {
        var rng = new Random(3);
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
            if (parts > 1) Assert.NotEqual(threads[0], threads[1]);
            if (job % 40 == 0) Thread.Sleep(5);                                  // longer than the spin: the workers sleep
            else if (job % 3 == 0) Thread.SpinWait(rng.Next(2000));
        }
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
