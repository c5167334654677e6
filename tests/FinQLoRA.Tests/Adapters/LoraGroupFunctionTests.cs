using FinQLoRA.Adapters;
using FinQLoRA.Models;
using FinQLoRA.Runtime;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Adapters;

/// <summary>
/// The LoRA branches of a q/k/v group as one autograd node (issue 26) against an independent reference: the same
/// formula written out in fp64 and differentiated by libtorch's autograd, with the node's own dropout masks drawn again
/// from the same seed. The node's outputs and gradients (x, every A and B, the bases) must be as close to fp64 as the
/// composed path's (plus one bf16 rounding of the largest value); the masks must be reproducible from the global
/// generator, independent per branch, and keep 1 − p of the elements.
/// </summary>
[Collection(GlobalRngCollection.Name)]
public sealed class LoraGroupFunctionTests
{
    private const long In = 48;
    private static readonly long[] Outs = [48, 16, 16]; // q, k, v of a grouped-query layer

    /// <param name="sideBySide">the bases as row blocks of one tensor (one fused matmul, the node gets their outputs side by
    /// side) or each its own (three matmuls, three outputs)</param>
    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public void TheGroupNodeMatchesFp64AutogradAndTheComposedPath(bool dropout, bool sideBySide)
    {
        using var scope = NewDisposeScope();
        var g = new Generator(31);
        var weights = Outs.Select(o => (randn([o, In], generator: g) * 0.1).to(ScalarType.BFloat16)).ToArray();
        var stored = sideBySide ? cat(weights, 0) : null;
        var projections = weights.Select((w, i) => new LoraLinear(new DenseLinear(
            stored is null ? w.clone() : stored.narrow(0, Outs.Take(i).Sum(), Outs[i])))).ToArray();
        var config = new LoraConfig { Rank = 4, Alpha = 8, Dropout = dropout ? 0.25 : 0 };
        foreach (var p in projections)
        {
            var adapter = p.AddAdapter(LoraLinear.DefaultAdapter, config, g);
            using var noGrad = no_grad();
            adapter.B.copy_(randn(adapter.B.shape, generator: g) * 0.5); // B = 0 would hide every product through B
            p.train(dropout);
        }
        var x0 = randn([2, 5, In], generator: g).to(ScalarType.BFloat16);
        var upstream = Outs.Select(o => randn([2, 5, o], generator: g).to(ScalarType.BFloat16)).ToArray();

        var fused = Run(projections, x0, upstream, fused: true, seed: 77);
        Assert.True(projections[0].CanAdaptTogether(projections), "the group path must be the one under test");
        var plain = Run(projections, x0, upstream, fused: false, seed: 77);

        // fp64 reference with the masks the node drew (the first draw after the seed)
        manual_seed(77);
        var masks = dropout ? DrawnMasks(x0, 0.25) : null;
        var x64 = x0.to(ScalarType.Float64).requires_grad_(true);
        var leaves = new List<Tensor> { x64 };
        var outputs = new List<Tensor>();
        for (int i = 0; i < Outs.Length; i++)
        {
            var adapter = projections[i].Adapters[LoraLinear.DefaultAdapter];
            var a = adapter.A.detach().to(ScalarType.Float64).requires_grad_(true);
            var b = adapter.B.detach().to(ScalarType.Float64).requires_grad_(true);
            leaves.Add(a);
            leaves.Add(b);
            var dropped = masks is null ? x64 : x64 * masks[i] / 0.75;
            var baseOut = matmul(x64, weights[i].to(ScalarType.Float64).t());
            outputs.Add(baseOut + matmul(matmul(dropped, a.t()), b.t()) * adapter.Scaling);
        }
        sum(stack(outputs.Select((o, i) => (o * upstream[i].to(ScalarType.Float64)).sum()).ToArray())).backward();

        for (int i = 0; i < Outs.Length; i++) AtLeastAsClose(outputs[i].detach(), plain.Outputs[i], fused.Outputs[i], $"output {i}", dropout);
        for (int i = 0; i < leaves.Count; i++) AtLeastAsClose(leaves[i].grad!, plain.Grads[i], fused.Grads[i], $"gradient {i}", dropout);
    }

    [Fact]
    public void DropoutMasksAreSeededByTheGlobalGeneratorIndependentPerBranchAndKeepOneMinusP()
    {
        using var scope = NewDisposeScope();
        var x = randn([64, 96], generator: new Generator(4)).to(ScalarType.BFloat16);
        manual_seed(9);
        var (dropped, mask) = LoraDropoutMask.Draw(x, 3, 0.1);
        manual_seed(9);
        var (again, maskAgain) = LoraDropoutMask.Draw(x, 3, 0.1);
        TensorAssert.BitIdentical(mask, maskAgain, "masks from the same seed");
        TensorAssert.BitIdentical(dropped, again, "dropped inputs from the same seed");
        var (_, next) = LoraDropoutMask.Draw(x, 3, 0.1);
        Assert.False(next.equal(mask).all().item<bool>(), "the next draw must differ");

        // P(keep) = 0.9: 18,432 draws, 4 standard deviations = 0.0088
        double kept = mask.to(ScalarType.Float64).mean().item<double>();
        Assert.InRange(kept, 0.9 - 0.0088, 0.9 + 0.0088);
        // branches independent: both kept ≈ 0.81, not 0.9 (equal masks) nor anything far from it
        double both = (mask[0].to(ScalarType.Float64) * mask[1]).mean().item<double>();
        Assert.InRange(both, 0.81 - 0.02, 0.81 + 0.02);
        // dropped = x·m/(1−p) in fp32, as PEFT's dropout of the fp32 input
        var expected = x.to(ScalarType.Float32).unsqueeze(0) * mask * (float)(1 / 0.9);
        TensorAssert.MaxDiffAtMost(expected, dropped, 1e-6, "dropped input");
    }

    private static Tensor[] DrawnMasks(Tensor x0, double p)
    {
        var (_, mask) = LoraDropoutMask.Draw(x0.reshape(-1, In), Outs.Length, p);
        return Enumerable.Range(0, Outs.Length).Select(i => mask[i].view(x0.shape).to(ScalarType.Float64)).ToArray();
    }

    private static (Tensor[] Outputs, Tensor[] Grads) Run(LoraLinear[] projections, Tensor x0, Tensor[] upstream, bool fused, ulong seed)
    {
        using var mode = TrainingFusions.Override(fused);
        manual_seed((long)seed);
        var x = x0.detach().clone().requires_grad_(true);
        var parameters = projections.SelectMany(p => new[] { p.Adapters[LoraLinear.DefaultAdapter].A, p.Adapters[LoraLinear.DefaultAdapter].B }).ToList();
        foreach (var p in parameters) p.grad = null;
        var ys = FusedProjections.Forward(x, projections);
        sum(stack(ys.Select((y, i) => (y.to(ScalarType.Float32) * upstream[i].to(ScalarType.Float32)).sum()).ToArray())).backward();
        var grads = new List<Tensor> { x.grad!.clone() };
        grads.AddRange(parameters.Select(p => p.grad!.clone()));
        return (ys.Select(y => y.detach()).ToArray(), [.. grads]);
    }

    /// <summary>The fused value's largest error against fp64 is at most the composed path's plus one bf16 rounding of the
    /// largest value (with dropout, only the fused path's masks are the reference's, so it is checked alone).</summary>
    private static void AtLeastAsClose(Tensor reference, Tensor plain, Tensor fused, string what, bool dropout)
    {
        double Error(Tensor t) => (t.to(ScalarType.Float64) - reference).abs().max().item<double>();
        double scale = reference.abs().max().item<double>();
        Assert.True(scale > 0, $"{what} is zero: the check would pass vacuously");
        if (!dropout) Assert.True(Error(fused) <= Error(plain) + scale / 256, $"{what}: fused error {Error(fused):G3}, composed {Error(plain):G3}, scale {scale:G3}");
        Assert.True(Error(fused) <= scale / 64, $"{what}: fused error {Error(fused):G3} against fp64 at scale {scale:G3}");
    }
}
