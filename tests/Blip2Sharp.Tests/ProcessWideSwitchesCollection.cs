using Xunit;

namespace Blip2Sharp.Tests;

/// <summary>
/// Tests that flip a process-wide switch of the decode kernels (DecodeAttention.Enabled, FloatGemv.Wide512) or need
/// the kernels' worker threads to themselves (DecodeThreads). They run alone: a test comparing two generations bit for
/// bit while another turns the managed attention off between them sees rounding differences (a beam score differed in
/// the 7th digit in a full run that way).
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessWideSwitchesCollection
{
    public const string Name = "the decode kernels' process-wide switches";
}
