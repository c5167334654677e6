using FinQLoRA.Data.Sft;
using static TorchSharp.torch;

namespace FinQLoRA.Privacy.PerUnitGradients;

/// <summary>
/// Where each example and unit of one micro-batch sits once <see cref="SftCollator"/> has padded it to [B, T]: every
/// row holds S slots (its examples: one for an unpacked row, one per segment of a packed row; S = the most any row
/// has), a token belongs to the slot of its example (padding to none), and each slot to a unit. The tokens of each slot
/// are listed slot-major ([B·S, L], L = the longest example), so per-example sums are one batched matmul over L. Also
/// the per-token loss weights that make an example's loss its MEAN target-token cross-entropy.
/// <para>Attention never crosses rows, nor segments of a packed row, so a token's activations depend on its own
/// example alone: an example's gradient is exactly the sum over its own tokens.</para>
/// </summary>
internal sealed class UnitLayout
{
    private UnitLayout(int rows, int length, int slotsPerRow, int slotLength, long[] slotTokens, float[] slotValid, int[] slotUnits,
        float[] tokenWeights, int examples)
    {
        Rows = rows;
        Length = length;
        SlotsPerRow = slotsPerRow;
        SlotLength = slotLength;
        _slotTokens = slotTokens;
        _slotValid = slotValid;
        SlotUnits = slotUnits;
        _tokenWeights = tokenWeights;
        ExamplesWithTargets = examples;
        Units = [.. slotUnits.Where(u => u >= 0).Distinct()];
    }

    private readonly long[] _slotTokens;
    private readonly float[] _slotValid;
    private readonly float[] _tokenWeights;

    /// <summary>B and T of the collated batch.</summary>
    public int Rows { get; }
    public int Length { get; }
    /// <summary>S: example slots per row.</summary>
    public int SlotsPerRow { get; }
    /// <summary>L: tokens of the longest example.</summary>
    public int SlotLength { get; }
    /// <summary>The unit of each slot [B·S], row-major; -1 for an empty slot.</summary>
    public int[] SlotUnits { get; }
    /// <summary>The distinct units of this micro-batch, in order of first appearance (row k of its per-unit gradients).</summary>
    public int[] Units { get; }
    /// <summary>Examples that have at least one target token (the loss is their mean).</summary>
    public int ExamplesWithTargets { get; }

    public static UnitLayout Of(IReadOnlyList<TokenizedExample> examples)
    {
        int b = examples.Count, t = examples.Max(e => e.Length);
        int s = examples.Max(e => e.SegmentStarts?.Length ?? 1);
        int l = examples.Max(e => SlotLengths(e).Max());
        var slotTokens = new long[b * s * l];
        var slotValid = new float[b * s * l];
        var units = Enumerable.Repeat(-1, b * s).ToArray();
        var weights = new float[b * t];
        int withTargets = 0;
        for (int r = 0; r < b; r++)
        {
            var e = examples[r];
            int[] starts = e.SegmentStarts ?? [0];
            int[] rowUnits = e.SegmentUnits ?? [e.Unit];
            if (rowUnits.Length != starts.Length)
                throw new InvalidOperationException($"a packed row has {starts.Length} segments but {rowUnits.Length} units");
            for (int k = 0; k < starts.Length; k++)
            {
                if (rowUnits[k] < 0)
                    throw new InvalidOperationException("differentially private training needs every example's unit (TokenizedExample.Unit / SegmentUnits); this row has none");
                int end = k + 1 < starts.Length ? starts[k + 1] : e.Length;
                units[r * s + k] = rowUnits[k];
                // the loss reads labels from position 1 on (position 0 is never predicted); a packed segment's first label is -100
                int n = 0;
                for (int c = Math.Max(starts[k], 1); c < end; c++) if (e.Labels[c] != TokenizedExample.IgnoreIndex) n++;
                for (int c = starts[k]; c < end; c++)
                {
                    int at = (r * s + k) * l + c - starts[k];
                    slotTokens[at] = (long)r * t + c;
                    slotValid[at] = 1;
                    if (c >= 1 && n > 0 && e.Labels[c] != TokenizedExample.IgnoreIndex) weights[r * t + c] = 1f / n;
                }
                if (n > 0) withTargets++;
            }
        }
        return new UnitLayout(b, t, s, l, slotTokens, slotValid, units, weights, withTargets);
    }

    private static IEnumerable<int> SlotLengths(TokenizedExample e)
    {
        int[] starts = e.SegmentStarts ?? [0];
        return starts.Select((start, k) => (k + 1 < starts.Length ? starts[k + 1] : e.Length) - start);
    }

    /// <summary>[B·S·L] int64: the flat index (b·T + t) of each slot's tokens, slot-major; 0 where a slot is shorter than L.</summary>
    public Tensor SlotTokens(Device device) => tensor(_slotTokens, device: device);

    /// <summary>[B·S, L, 1] fp32: 1 on a slot's real tokens, 0 on the filler after them.</summary>
    public Tensor SlotValid(Device device) => tensor(_slotValid, [Rows * SlotsPerRow, SlotLength, 1], device: device);

    /// <summary>[B, T] fp32 weight of each label position: 1/(its example's target count) on targets, 0 elsewhere.</summary>
    public Tensor TokenWeights(Device device) => tensor(_tokenWeights, [Rows, Length], device: device);

    /// <summary>[K, B·S] fp32 one-hot: which unit each slot belongs to (K = <see cref="Units"/>).</summary>
    public Tensor UnitOfSlot(Device device)
    {
        var index = Units.Select((u, k) => (u, k)).ToDictionary(p => p.u, p => p.k);
        var onehot = new float[Units.Length * SlotUnits.Length];
        for (int slot = 0; slot < SlotUnits.Length; slot++)
            if (SlotUnits[slot] >= 0) onehot[index[SlotUnits[slot]] * SlotUnits.Length + slot] = 1;
        return tensor(onehot, [Units.Length, SlotUnits.Length], device: device);
    }
}
