using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Blip2Sharp.Tests;

public class NativeLoadTests
{
    [Fact]
    public void LibTorchLoadsAndComputesAMatrixProduct()
    {
        using var a = tensor(new float[] { 1, 2, 3, 4 }, 2, 2);
        using var b = tensor(new float[] { 5, 6, 7, 8 }, 2, 2);
        using var c = a.matmul(b);
        // [[1,2],[3,4]] @ [[5,6],[7,8]] = [[19,22],[43,50]]
        Assert.Equal(new float[] { 19, 22, 43, 50 }, c.data<float>().ToArray());
    }
}
