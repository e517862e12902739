namespace Blip2Sharp.Training;

/// <summary>
/// Seeds derived from several parts (a user's seed, a split, an epoch, a step), the same in every process. Not
/// HashCode.Combine nor string.GetHashCode: .NET randomizes both per process, so data and training seeded through them
/// changed from one run to the next for the same --seed (a demo test split of seed 12345 differed between two runs).
/// </summary>
public static class Seeds
{
    /// <summary>A non-negative int seed for System.Random from the parts, by SplitMix64 over each in turn.</summary>
    public static int Mix(params long[] parts)
    {
        ulong state = 0x9E3779B97F4A7C15UL;
        foreach (long p in parts) state = SplitMix64(state ^ (ulong)p);
        return (int)(state >> 33);                                               // 31 bits: never negative
    }

    /// <summary>A stable 64-bit hash of a name (FNV-1a over its UTF-16 code units).</summary>
    public static long Of(string name)
    {
        ulong h = 0xCBF29CE484222325UL;
        foreach (char c in name) h = (h ^ c) * 0x100000001B3UL;
        return (long)h;
    }

    /// <summary>One step of SplitMix64 (Steele, Lea, Flood 2014): the output for the state after adding the golden gamma.</summary>
    internal static ulong SplitMix64(ulong state)
    {
        ulong z = state + 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
