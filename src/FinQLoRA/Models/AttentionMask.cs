using System.Runtime.CompilerServices;
using static TorchSharp.torch;

namespace FinQLoRA.Models;

/// <summary>
/// Additive attention masks and positions for padded batches (left padding in generation, right padding in the
/// serving engine's slots). A key is visible to a query when it is not padding and not in the query's future. We use the dtype's most negative finite value rather than
/// -inf, as Hugging Face does, so that a padding query whose row is all masked yields finite garbage instead of NaN.
/// </summary>
public static class AttentionMask
{
    // Masks known to be the plain causal one (no padding, no past, no packing boundaries, no window), so attention can
    // pass the causal flag instead (the flash kernel then skips the masked blocks). The fact travels with the tensor
    // object that was built as such, never read back from its values; a weak table, so a mask's mark dies with it.
    private static readonly ConditionalWeakTable<Tensor, object> PlainCausalMasks = new();
    private static readonly object Marked = new();

    /// <summary>Whether <paramref name="mask"/> was made as the plain causal mask (<see cref="Build"/> without padding
    /// and past, or <see cref="To"/> and <see cref="MarkPlainCausal"/> of one): key j visible to query i iff j ≤ i.</summary>
    public static bool IsPlainCausal(Tensor mask) => PlainCausalMasks.TryGetValue(mask, out _);

    /// <summary>Records that <paramref name="mask"/> holds the plain causal mask (a saved copy of one that was, as
    /// gradient checkpointing hands it back); returns it.</summary>
    public static Tensor MarkPlainCausal(Tensor mask)
    {
        PlainCausalMasks.AddOrUpdate(mask, Marked);
        return mask;
    }

    /// <summary>The mask in <paramref name="dtype"/>, still known as plain causal where it was.</summary>
    public static Tensor To(Tensor mask, ScalarType dtype)
    {
        if (mask.dtype == dtype) return mask;
        var converted = mask.to(dtype);
        return IsPlainCausal(mask) ? MarkPlainCausal(converted) : converted;
    }

    /// <param name="padMask">[B, S] with 1 for real tokens and 0 for padding over all S = past + T positions, or null (no padding)</param>
    /// <returns>[B, 1, T, S] additive mask in fp32</returns>
    public static Tensor Build(Tensor? padMask, long batch, long t, long past, Device device)
    {
        using var scope = NewDisposeScope();
        long s = past + t;
        var queryPos = arange(past, s, device: device).view(t, 1);
        var keyPos = arange(0, s, device: device).view(1, s);
        var visible = keyPos.le(queryPos).view(1, 1, t, s).expand(batch, 1, t, s);
        if (padMask is not null)
            visible = visible.logical_and(padMask.to(ScalarType.Bool).view(batch, 1, 1, s));
        var mask = zeros([batch, 1, t, s], ScalarType.Float32, device)
            .masked_fill(visible.logical_not(), float.MinValue).MoveToOuterDisposeScope();
        return padMask is null && past == 0 ? MarkPlainCausal(mask) : mask;
    }

    /// <summary>The mask of right-padded rows that start at different positions (the serving engine's prefill after a
    /// prefix-cache hit): query c of row b sits at <paramref name="queryPositions"/>[b, c] and sees key j when j ≤ that
    /// position and j &lt; <paramref name="lengths"/>[b] (the row's own positions, causally; what lies past its length is
    /// padding). With every row starting at 0 this is <see cref="Build"/> of <see cref="RightPadding"/>, and a row's
    /// visible keys are still its earlier tokens, one per position, so <see cref="SlidingWindow"/> holds on it.</summary>
    /// <param name="queryPositions">[B, T] int64</param>
    /// <param name="lengths">[B] int64</param>
    /// <returns>[B, 1, T, S] additive mask in fp32</returns>
    public static Tensor RightPadded(Tensor queryPositions, Tensor lengths, long s)
    {
        using var scope = NewDisposeScope();
        long b = queryPositions.shape[0], t = queryPositions.shape[1];
        var keyPos = arange(0, s, ScalarType.Int64, queryPositions.device).view(1, 1, 1, s);
        var visible = keyPos.le(queryPositions.view(b, 1, t, 1)).logical_and(keyPos.lt(lengths.view(b, 1, 1, 1)));
        return zeros([b, 1, t, s], ScalarType.Float32, queryPositions.device)
            .masked_fill(visible.logical_not(), float.MinValue).MoveToOuterDisposeScope();
    }

    /// <summary>The mask of rows whose queries each see the keys below a bound and those within one segment of the slot
    /// (<paramref name="below"/>, <paramref name="segmentStart"/>, <paramref name="segmentEnd"/> [B, T] int64; an
    /// empty segment has start &gt; end). With segments empty and bound = min(position + 1, length) this is
    /// <see cref="RightPadded"/>; a segment holds a scoring branch's own earlier tokens, fed beside other branches
    /// after the prompt (<c>Serving.PrefillLayout</c>). <see cref="SlidingWindow"/> keeps each query's last visible keys
    /// in slot order, which for a branch token are its own earlier tokens and then the prompt's last: its window.</summary>
    /// <returns>[B, 1, T, S] additive mask in fp32</returns>
    public static Tensor BelowOrWithin(Tensor below, Tensor segmentStart, Tensor segmentEnd, long s)
    {
        using var scope = NewDisposeScope();
        long b = below.shape[0], t = below.shape[1];
        var key = arange(0, s, ScalarType.Int64, below.device).view(1, 1, 1, s);
        var visible = key.lt(below.view(b, 1, t, 1))
            .logical_or(key.ge(segmentStart.view(b, 1, t, 1)).logical_and(key.le(segmentEnd.view(b, 1, t, 1))));
        return zeros([b, 1, t, s], ScalarType.Float32, below.device)
            .masked_fill(visible.logical_not(), float.MinValue).MoveToOuterDisposeScope();
    }

    /// <summary>The padding mask [B, S] of right-padded rows: true at positions below each row's length
    /// (<paramref name="lengths"/> [B] int64), false after; the input <see cref="Build"/> takes for such a batch.</summary>
    public static Tensor RightPadding(Tensor lengths, long s)
    {
        using var scope = NewDisposeScope();
        return arange(0, s, ScalarType.Int64, lengths.device).view(1, s).lt(lengths.view(-1, 1)).MoveToOuterDisposeScope();
    }

    /// <summary>The block-diagonal causal mask of packed rows: a token sees the earlier tokens of its own segment only
    /// (<paramref name="segments"/> [B, T], ids ≥ 1 for tokens, 0 for padding, which sees nothing).</summary>
    /// <returns>[B, 1, T, T] additive mask in fp32</returns>
    public static Tensor Packed(Tensor segments)
    {
        using var scope = NewDisposeScope();
        long b = segments.shape[0], t = segments.shape[1];
        var causal = arange(0, t, device: segments.device).view(1, t).le(arange(0, t, device: segments.device).view(t, 1));  // [T, T]: key ≤ query
        var same = segments.view(b, t, 1).eq(segments.view(b, 1, t)).logical_and(segments.view(b, 1, t).ne(0));             // [B, T, T]
        var visible = same.logical_and(causal.view(1, t, t)).view(b, 1, t, t);
        return zeros([b, 1, t, t], ScalarType.Float32, segments.device).masked_fill(visible.logical_not(), float.MinValue).MoveToOuterDisposeScope();
    }

    /// <summary>Positions [B, T] of the last T tokens: the count of real tokens before each one, so left padding
    /// does not shift positions (padding itself gets position 0).</summary>
    public static Tensor Positions(Tensor? padMask, long batch, long t, long past, Device device)
    {
        using var scope = NewDisposeScope();
        if (padMask is null)
            return arange(past, past + t, device: device).unsqueeze(0).expand(batch, t).MoveToOuterDisposeScope();
        var pos = padMask.to(ScalarType.Int64).cumsum(-1) - 1;
        pos = pos.clamp_min(0).narrow(1, past, t);
        return pos.contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>
    /// A causal mask [B, 1, T, S] narrowed to a sliding window: each query keeps only its last <paramref name="window"/>
    /// visible keys (itself included), so a key is seen while query − key &lt; window, as in transformers and llama.cpp.
    /// Counting visible keys rather than comparing indices makes it hold for every layout the masks describe (left
    /// padding, right-padded serving slots, packed segments), since a query's visible keys are its own sequence's
    /// earlier tokens, one per position.
    /// </summary>
    public static Tensor SlidingWindow(Tensor mask, int window)
    {
        using var scope = NewDisposeScope();
        var visible = mask.eq(0);
        var laterVisible = visible.to(ScalarType.Int32).flip(-1).cumsum(-1).flip(-1); // visible keys at this index or after
        // the mask arrives in the compute dtype: float.MinValue overflows bf16 and fp16, so fill with that dtype's own
        // most negative finite value
        double hidden = mask.dtype == ScalarType.Float32 ? float.MinValue : finfo(mask.dtype).min;
        return mask.masked_fill(visible.logical_and(laterVisible.gt(window)), hidden)
            .MoveToOuterDisposeScope();
    }
}
