using FinQLoRA.Models;
using static TorchSharp.torch;

namespace FinQLoRA.Bench;

/// <summary>
/// ATen ops of one decoder layer's parts, forward and backward each (<c>bench train --ops-by-module true</c>): the
/// step's per-op table says which ops run, this says which module runs them. Each part runs on a fresh leaf input of
/// the step's shape with a seeded output gradient, so a count includes the leaf's gradient accumulation (one or two
/// ops) and the engine's seeding of the gradient, the same few ops for every part.
/// </summary>
internal static class TrainOpsByModule
{
    public static void Print(DecoderModel model, int batch, int seq, string label, bool detail)
    {
        if (!AtenOpCounter.Available) return;
        model.train();
        var layer = model.Layers[0];
        var config = model.Config;
        var dtype = model.ComputeDType;
        using var scope = NewDisposeScope();
        manual_seed(11);
        var positions = AttentionMask.Positions(null, batch, seq, 0, CPU);
        var (cos, sin) = new RotaryEmbedding(config).CosSin(positions, dtype);
        var mask = AttentionMask.Build(null, batch, seq, 0, CPU);
        var maskInDtype = AttentionMask.To(mask, dtype);
        var parts = new (string Name, Func<Tensor, Tensor> Run)[]
        {
            ("input RMSNorm", x => layer.InputNorm.forward(x)),
            ("attention (q,k,v + LoRA, RoPE, SDPA, o)", x => layer.Attention.Forward(x, cos, sin, maskInDtype, null)),
            ("MLP RMSNorm", x => layer.MlpInputNorm.forward(x)),
            ("MLP (gate/up, SwiGLU, down)", x => layer.Mlp.Forward(x)),
            ("whole layer (the above and two residual adds)", x => layer.Forward(x, cos, sin, maskInDtype, null)),
        };
        foreach (var (name, run) in parts)
        {
            using var inner = NewDisposeScope();
            var x = (randn([batch, seq, config.HiddenSize]) * 0.5).to(dtype).requires_grad_(true);
            var g = randn([batch, seq, config.HiddenSize]).to(dtype);
            var forward = AtenOpCounter.Count(() => { using var s = NewDisposeScope(); _ = run(x).MoveToOuterDisposeScope(); });
            var counts = AtenOpCounter.Count(() =>
            {
                using var s = NewDisposeScope();
                var y = run(x);
                y.backward([g]);
            });
            int total = counts.Values.Sum(), fwd = forward.Values.Sum();
            int backwardOps = total - fwd;
            Console.Error.WriteLine($"  ops by module {label}: {name}: forward {fwd}, backward {backwardOps}, total {total}");
            if (detail)
                foreach (var (op, n) in counts.OrderByDescending(kv => kv.Value))
                    Console.Error.WriteLine($"    {name}: {op} {n} (forward {forward.GetValueOrDefault(op)})");
        }
    }
}
