using FinQLoRA.Adapters;
using FinQLoRA.Models;
using static TorchSharp.torch;

namespace FinQLoRA.Bench;

/// <summary>The serve benches' adapters: a0, a1, … (rank 8 on q, k, v, o), B seeded nonzero so that they do real work.</summary>
internal static class BenchAdapters
{
    public static void AddSeeded(DecoderModel model, int count)
    {
        for (int a = 0; a < count; a++)
        {
            LoraInjector.Apply(model, new LoraConfig { Rank = 8, Alpha = 16, TargetModules = ["q_proj", "k_proj", "v_proj", "o_proj"] }, 100 + a, $"a{a}");
            using var g = new Generator((ulong)(200 + a));
            using var noGrad = no_grad();
            foreach (var w in LoraInjector.Wrapped(model))
                if (w.Lora.Adapters.TryGetValue($"a{a}", out var adapter))
                    using (var scope = NewDisposeScope()) adapter.B.copy_(randn(adapter.B.shape, generator: g) * 0.02);
        }
    }
}
