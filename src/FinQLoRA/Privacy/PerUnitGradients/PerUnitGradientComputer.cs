using FinQLoRA.Adapters.GradientCapture;
using FinQLoRA.Data.Sft;
using FinQLoRA.Models;
using FinQLoRA.Training;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FinQLoRA.Privacy.PerUnitGradients;

/// <summary>
/// Exact per-unit gradients of the LoRA parameters from ONE forward and ONE backward of a micro-batch (no batch-1
/// passes). For z = B·u, u = A·x' (x' = dropout(x)), the gradient of A and B is a sum over tokens of outer products of
/// what each projection saw and the gradient it got back, so a unit's gradient is the same sum over its own tokens
/// (Goodfellow 2015; Opacus' per-sample linear grad sampler; Li et al. 2022 for sequences):
/// <code>
///   dA[U] = Σ_{t∈U} (dL/du)_t ⊗ x'_t        dB[U] = Σ_{t∈U} (dL/dz)_t ⊗ u_t        dm[U] = Σ_{t∈U} (dL/dscale)_t / n  (DoRA)
/// </code>
/// computed in two stages: per example slot of a row (a [B, S, T] token mask applied to the r-wide tensors, then one
/// batched matmul per row: B·S·T·r·(in + out) multiply-adds, S = examples per row, 1 unless packed), then slots to units
/// (a [K, B·S] one-hot times [B·S, parameter size]). Never a [units, tokens, out] tensor.
/// </summary>
internal static class PerUnitGradientComputer
{
    public static MicroBatchUnitGradients Run(DecoderModel model, CapturedAdapters adapters, IReadOnlyList<(string Name, Parameter P)> parameters,
        IReadOnlyList<TokenizedExample> examples, int padId, Device device, long? rowsPerChunk = null)
    {
        using var scope = NewDisposeScope();
        adapters.ClearRecords();
        try
        {
            var layout = UnitLayout.Of(examples);
            using var batch = SftCollator.Collate(examples, padId, device);
            var loss = SupervisedLoss.WeightedSum(model, batch, layout.TokenWeights(device), rowsPerChunk);
            loss.backward();
            var gradients = FromRecords(adapters, parameters, layout, device);
            foreach (var g in gradients) g.MoveToOuterDisposeScope();
            return new MicroBatchUnitGradients(layout.Units, gradients, loss.item<float>(), batch.Tokens, layout.ExamplesWithTargets);
        }
        finally
        {
            adapters.ClearRecords();
        }
    }

    private static Tensor[] FromRecords(CapturedAdapters adapters, IReadOnlyList<(string Name, Parameter P)> parameters, UnitLayout layout, Device device)
    {
        int b = layout.Rows, t = layout.Length, s = layout.SlotsPerRow;
        var slotMask = layout.SlotMask(device);          // [B, S, T]
        var perSlot = new Tensor?[parameters.Count];     // [B·S, parameter size]
        void Add(int parameter, Tensor g) => perSlot[parameter] = perSlot[parameter] is { } sum ? sum + g : g;
        Tensor Tokens(Tensor x, string what) => x.numel() % ((long)b * t) == 0
            ? x.reshape(b, t, -1)
            : throw new InvalidOperationException($"a LoRA projection saw {what} of shape [{string.Join(", ", x.shape)}], not [{b}, {t}, …]");

        foreach (var entry in adapters.Entries)
            foreach (var record in entry.Capture.Records)
            {
                if (entry.A >= 0 && record.Input is { } input && record.LowRankGradient is { } gradU)
                {
                    var x = Tokens(input, "an input");                          // [B, T, in]
                    var du = Tokens(gradU, "dL/du");                             // [B, T, r]
                    long r = du.shape[2];
                    var masked = (slotMask.unsqueeze(-1) * du.unsqueeze(1))     // [B, S, T, r]
                        .permute(0, 1, 3, 2).reshape(b, s * r, t);
                    Add(entry.A, masked.bmm(x).reshape((long)b * s, -1));        // [B·S, r·in]
                }
                if (entry.B >= 0 && record.LowRank is { } lowRank && record.OutputGradient is { } gradZ)
                {
                    var u = Tokens(lowRank, "u");                                // [B, T, r]
                    var dz = Tokens(gradZ, "dL/dz");                             // [B, T, out]
                    long r = u.shape[2], output = dz.shape[2];
                    var masked = (slotMask.unsqueeze(-1) * u.unsqueeze(1))      // [B, S, T, r]
                        .permute(0, 2, 1, 3).reshape(b, t, s * r);
                    var g = dz.transpose(1, 2).bmm(masked)                       // [B, out, S·r]
                        .reshape(b, output, s, r).permute(0, 2, 1, 3);           // [B, S, out, r]
                    Add(entry.B, g.reshape((long)b * s, -1));
                }
                if (entry.Magnitude >= 0 && record.ScaleGradient is { } gradScale && record.Norm is { } norm)
                {
                    var g = slotMask.bmm(Tokens(gradScale, "dL/dscale")) / norm; // [B, S, out]
                    Add(entry.Magnitude, g.reshape((long)b * s, -1));
                }
            }

        var unitOfSlot = layout.UnitOfSlot(device);      // [K, B·S]
        long k = layout.Units.Length;
        return [.. parameters.Select((p, i) =>
        {
            long[] shape = [k, .. p.P.shape];
            // no record reached it (no target token depended on it): its gradient is zero
            return perSlot[i] is { } g ? unitOfSlot.matmul(g).reshape(shape) : zeros(shape, ScalarType.Float32, device);
        })];
    }
}
