using static TorchSharp.torch;

namespace Blip2Sharp.Modeling;

/// <summary>
/// Keys and values of one attention layer in buffers allocated once for the whole generation ([B, H, capacity,
/// Dh]), filled in place: no growing concatenation per token.
/// </summary>
public sealed class LayerKvCache : IDisposable
{
    private Tensor? _keys, _values;
    private readonly long _capacity;

    public long Length { get; private set; }

    public LayerKvCache(long capacity) => _capacity = capacity;

    /// <summary>Writes k, v [B, H, T, Dh] after the cached positions; returns views of every cached position.</summary>
    public (Tensor Keys, Tensor Values) Append(Tensor k, Tensor v)
    {
        long t = k.shape[2];
        if (_keys is null)
        {
            _keys = empty([k.shape[0], k.shape[1], _capacity, k.shape[3]], k.dtype, k.device);
            _values = empty([v.shape[0], v.shape[1], _capacity, v.shape[3]], v.dtype, v.device);
            _keys.DetachFromDisposeScope();
            _values.DetachFromDisposeScope();
        }
        if (Length + t > _capacity) throw new InvalidOperationException($"KV cache full: {Length} + {t} > {_capacity} positions.");
        _keys.narrow(2, Length, t).copy_(k);
        _values!.narrow(2, Length, t).copy_(v);
        Length += t;
        return (_keys.narrow(2, 0, Length), _values.narrow(2, 0, Length));
    }

    /// <summary>Whether <see cref="TakeOne"/> can hold one more position of <paramref name="batch"/> rows in this dtype
    /// on the CPU (no buffers yet, or contiguous ones of that kind with room).</summary>
    internal bool CanTakeOne(long batch, ScalarType dtype) =>
        _keys is null
            ? _capacity >= 1
            : _keys.shape[0] == batch && _keys.dtype == dtype && _keys.device_type == TorchSharp.DeviceType.CPU
              && Layers.FloatGemv.IsDense(_keys) && Layers.FloatGemv.IsDense(_values!) && Length < _capacity;

    /// <summary>
    /// Counts one more position and returns the whole buffers [B, H, capacity, Dh] (made on first use, float32 on the
    /// CPU) with that position's index: the caller writes its keys and values there (<see cref="Layers.DecodeAttention"/>).
    /// </summary>
    internal (Tensor Keys, Tensor Values, long Position) TakeOne(long batch, long heads, long headDim)
    {
        if (_keys is null)
        {
            _keys = empty([batch, heads, _capacity, headDim], ScalarType.Float32);
            _values = empty([batch, heads, _capacity, headDim], ScalarType.Float32);
            _keys.DetachFromDisposeScope();
            _values.DetachFromDisposeScope();
        }
        if (Length + 1 > _capacity) throw new InvalidOperationException($"KV cache full: {Length} + 1 > {_capacity} positions.");
        return (_keys, _values!, Length++);
    }

    /// <summary>Rows in the order of <paramref name="index"/> (beam search: reorder, or expand one row per beam).</summary>
    public void Reorder(Tensor index)
    {
        if (_keys is null) return;
        var k = _keys.index_select(0, index);
        var v = _values!.index_select(0, index);
        k.DetachFromDisposeScope();
        v.DetachFromDisposeScope();
        _keys.Dispose();
        _values.Dispose();
        _keys = k;
        _values = v;
    }

    public void Dispose()
    {
        _keys?.Dispose();
        _values?.Dispose();
    }
}

/// <summary>One <see cref="LayerKvCache"/> per decoder layer.</summary>
public sealed class KvCache(int layers, long capacity) : IDisposable
{
    public LayerKvCache[] Layers { get; } = [.. Enumerable.Range(0, layers).Select(_ => new LayerKvCache(capacity))];

    public long Length => Layers[0].Length;

    public void Reorder(Tensor index)
    {
        foreach (var l in Layers) l.Reorder(index);
    }

    public void Dispose()
    {
        foreach (var l in Layers) l.Dispose();
    }
}
