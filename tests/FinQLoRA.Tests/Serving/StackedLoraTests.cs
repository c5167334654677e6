using FinQLoRA.Adapters;
using FinQLoRA.Serving;
using FinQLoRA.Tests.Adapters;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Serving;

/// <summary>The gathered batched LoRA delta against <see cref="LoraLinear"/>'s one-adapter forward.</summary>
public sealed class StackedLoraTests
{
    [Fact]
    public void OneMixedForwardMatchesEachRowWithItsAdapterActive()
    {
        using var model = ServingEngineTests.ModelWithAdapters(); // a: LoRA r4, b: LoRA r8, d: DoRA r2
        string?[] order = [null, .. LoraInjector.AdapterNames(model)];
        var selection = new LoraRowSelection();
        var stacks = LoraInjector.Wrapped(model).Select(w => w.Lora.Stacked = StackedLora.Build(w.Lora, order, selection)).ToList();
        try
        {
            using var noGrad = no_grad();
            using var ids = LoraTestKit.Ids();                                   // [2, 6]
            using var batch = cat([ids, ids], 0);                               // four rows: base, a, b, d
            string?[] rowAdapters = [null, "a", "b", "d"];
            selection.Rows = tensor(rowAdapters.Select(a => (long)Array.IndexOf(order, a)).ToArray());
            using var mixed = model.Forward(batch);
            selection.Rows.Dispose();
            selection.Rows = null;
            for (int r = 0; r < 4; r++)
            {
                LoraInjector.SetActiveAdapter(model, rowAdapters[r]);
                using var alone = model.Forward(batch.narrow(0, r, 1));
                using var row = mixed.narrow(0, r, 1);
                Assert.True(TensorAssert.RelativeMaxDiff(row, alone) < 1e-5, $"row {r} ({rowAdapters[r] ?? "base"}) differs by {TensorAssert.RelativeMaxDiff(row, alone)}");
            }
            LoraInjector.SetActiveAdapter(model, null);
            using var plain = model.Forward(batch.narrow(0, 1, 1));
            using var withA = mixed.narrow(0, 1, 1);
            Assert.True(TensorAssert.MaxDiff(withA, plain) > 1e-3); // the adapter does change the logits
        }
        finally
        {
            foreach (var w in LoraInjector.Wrapped(model)) w.Lora.Stacked = null;
            foreach (var s in stacks) s.Dispose();
        }
    }
}
