using static TorchSharp.torch;

namespace FinQLoRA.Serving;

/// <summary>Where a step's keys and values go in the <see cref="SlotKvCache"/>: told to the cache before the forward,
/// for all of the step's rows or (in a pipeline) for one micro-batch of them, a run of rows [from, from + count).</summary>
internal abstract record CacheWrite
{
    /// <summary>Places rows [<paramref name="from"/>, from + <paramref name="count"/>) of the step.</summary>
    public abstract void Begin(SlotKvCache cache, int from, int count);

    /// <summary>A prefill whose rows all start at <see cref="Offset"/>, in consecutive slots from <see cref="Slot"/>.</summary>
    public sealed record Prefill(int Slot, int Offset) : CacheWrite
    {
        public override void Begin(SlotKvCache cache, int from, int count) => cache.BeginPrefill(Slot + from, count, Offset);
    }

    /// <summary>A prefill whose row r writes at <see cref="Positions"/>[r] ([rows, T] int64), slots from <see cref="Slot"/>.</summary>
    public sealed record PrefillAt(int Slot, Tensor Positions, int Span) : CacheWrite
    {
        public override void Begin(SlotKvCache cache, int from, int count) =>
            cache.BeginPrefillAt(Slot + from, from == 0 && count == Positions.shape[0] ? Positions : Positions.narrow(0, from, count), Span);
    }

    /// <summary>One token for each running row r (slot r) at position <see cref="Lengths"/>[r] ([n] int64).</summary>
    public sealed record Decode(Tensor Lengths, int Span) : CacheWrite
    {
        public override void Begin(SlotKvCache cache, int from, int count)
        {
            var lengths = from == 0 && count == Lengths.shape[0] ? Lengths : Lengths.narrow(0, from, count);
            cache.BeginDecode(arange(from, from + count, ScalarType.Int64, Lengths.device), lengths, Span, from);
        }
    }
}
