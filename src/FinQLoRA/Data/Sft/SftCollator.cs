using static TorchSharp.torch;

namespace FinQLoRA.Data.Sft;

/// <summary>Pads a batch on the right to its longest member: ids with the pad id, labels with -100, and a
/// mask of real tokens (right padding is fine for training: causal attention never looks right).</summary>
public static class SftCollator
{
    public sealed record Batch(Tensor InputIds, Tensor PadMask, Tensor Labels, int Tokens, int TargetTokens) : IDisposable
    {
        public void Dispose() { InputIds.Dispose(); PadMask.Dispose(); Labels.Dispose(); }
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
        return new Batch(tensor(ids, [b, t], device: device), tensor(mask, [b, t], device: device),
            tensor(labels, [b, t], device: device), tokens, targets);
    }
}
