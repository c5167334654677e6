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
/// computed in two stages: per example slot (each example's tokens gathered slot-major into [B·S, L, ·], L its longest
/// example, then one batched matmul: about tokens·r·(in + out) multiply-adds, as the ordinary backward's own dA and dB),
/// then slots to units (a [K, B·S] one-hot times [B·S, parameter size]). Never a [units, tokens, out] tensor.
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
            var loss = SupervisedLoss.Sum(model, batch, rowsPerChunk, tokenWeights: layout.TokenWeights(device));
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
        int b = layout.Rows, t = layout.Length;
        long slots = (long)b * layout.SlotsPerRow, l = layout.SlotLength;
        var index = layout.SlotTokens(device);           // [B·S·L] into the B·T tokens
        var valid = layout.SlotValid(device);            // [B·S, L, 1]: the filler after a short example is masked on the gradient side
        var perSlot = new Tensor?[parameters.Count];     // [B·S, parameter size]
        void Add(int parameter, Tensor g) => perSlot[parameter] = perSlot[parameter] is { } sum ? sum + g : g;
        Tensor BySlot(Tensor x, string what) => x.numel() % ((long)b * t) == 0
            ? x.reshape((long)b * t, -1).index_select(0, index).reshape(slots, l, -1)
            : throw new InvalidOperationException($"a LoRA projection saw {what} of shape [{string.Join(", ", x.shape)}], not [{b}, {t}, …]");

        foreach (var entry in adapters.Entries)
            foreach (var record in entry.Capture.Records)
            {
                if (entry.A >= 0 && record.Input is { } input && record.LowRankGradient is { } gradU)
                {
                    var du = BySlot(gradU, "dL/du") * valid;                               // [B·S, L, r]
                    Add(entry.A, du.transpose(1, 2).bmm(BySlot(input, "an input")).reshape(slots, -1)); // [B·S, r·in]
                }
                if (entry.B >= 0 && record.LowRank is { } lowRank && record.OutputGradient is { } gradZ)
                {
                    var dz = BySlot(gradZ, "dL/dz") * valid;                               // [B·S, L, out]
                    Add(entry.B, dz.transpose(1, 2).bmm(BySlot(lowRank, "u")).reshape(slots, -1)); // [B·S, out·r]
                }
                if (entry.Magnitude >= 0 && record.ScaleGradient is { } gradScale && record.Norm is { } norm)
                {
                    var g = (BySlot(gradScale, "dL/dscale") * valid).sum(1) / norm;        // [B·S, out]
                    Add(entry.Magnitude, g);
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
