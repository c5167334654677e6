using static TorchSharp.torch;

namespace FinQLoRA.Data.Sft;

/// <summary>Pads a batch on the right to its longest member: ids with the pad id, labels with -100, and a
/// mask of real tokens (right padding is fine for training: causal attention never looks right). A batch of packed
/// rows also gets each token's position within its own example and its segment id (1, 2, … per row; 0 on padding).</summary>
public static class SftCollator
{
    /// <param name="Positions">[B, T] positions within each token's example, for packed rows; else null</param>
    /// <param name="Segments">[B, T] segment ids for packed rows (attention stays inside a segment); else null</param>
    public sealed record Batch(Tensor InputIds, Tensor PadMask, Tensor Labels, int Tokens, int TargetTokens,
        Tensor? Positions = null, Tensor? Segments = null) : IDisposable
    {
        public bool Packed => Segments is not null;
        public void Dispose() { InputIds.Dispose(); PadMask.Dispose(); Labels.Dispose(); Positions?.Dispose(); Segments?.Dispose(); }
    }

    public static Batch Collate(IReadOnlyList<TokenizedExample> examples, int padId, Device device)
    {
        int b = examples.Count, t = examples.Max(e => e.Length);
        var ids = new long[b * t];
        var mask = new long[b * t];
        var labels = new long[b * t];
        int tokens = 0, targets = 0;
        for (int r = 0; r < b; r++)
            for (int c = 0; c < t; c++)
            {
                bool real = c < examples[r].Length;
                ids[r * t + c] = real ? examples[r].InputIds[c] : padId;
                mask[r * t + c] = real ? 1 : 0;
                labels[r * t + c] = real ? examples[r].Labels[c] : TokenizedExample.IgnoreIndex;
                if (real) tokens++;
                if (real && examples[r].Labels[c] != TokenizedExample.IgnoreIndex) targets++;
            }
        if (!examples.Any(e => e.SegmentStarts is not null))
            return new Batch(tensor(ids, [b, t], device: device), tensor(mask, [b, t], device: device),
                tensor(labels, [b, t], device: device), tokens, targets);
        var positions = new long[b * t];
        var segments = new long[b * t];
        for (int r = 0; r < b; r++)
        {
            int[] starts = examples[r].SegmentStarts ?? [0];
            for (int k = 0; k < starts.Length; k++)
            {
                int end = k + 1 < starts.Length ? starts[k + 1] : examples[r].Length;
                for (int c = starts[k]; c < end; c++)
                {
                    positions[r * t + c] = c - starts[k];
                    segments[r * t + c] = k + 1;
                }
            }
        }
        return new Batch(tensor(ids, [b, t], device: device), tensor(mask, [b, t], device: device),
            tensor(labels, [b, t], device: device), tokens, targets, tensor(positions, [b, t], device: device), tensor(segments, [b, t], device: device));
    }
}
