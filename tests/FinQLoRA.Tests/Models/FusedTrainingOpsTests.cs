using FinQLoRA.Adapters;
using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Runtime;
using FinQLoRA.Tests.Adapters;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Models;

/// <summary>
/// The fused RMSNorm and RoPE autograd nodes (issue 26) against an independent reference: the same formula written out
/// in fp64 and differentiated by libtorch's autograd. The fused node's forward must be bit-identical to the composed
/// bf16 forward it replaces, and its input gradient at least as close to the fp64 gradient as the composed bf16 path's
/// (plus one bf16 rounding). Then a whole training loss and every adapter gradient, fused and unfused, on the seeded
/// Llama in bf16 with 16- and 4-bit bases.
/// </summary>
public sealed class FusedTrainingOpsTests
{
    // 72: a width the CPU kernel (RmsNormKernel) ends with a scalar tail of
    [Theory]
    [InlineData(64)]
    [InlineData(72)]
    public void FusedRmsNormMatchesTheComposedForwardBitForBitAndFp64AutogradInBackward(int width)
    {
        using var scope = NewDisposeScope();
        var g = new Generator(21);
        var x0 = (randn([3, 5, width], generator: g) * 3).to(ScalarType.BFloat16);
        var w = (randn([width], generator: g) * 0.5 + 1).to(ScalarType.BFloat16);
        var upstream = randn([3, 5, width], generator: g).to(ScalarType.BFloat16);
        using var norm = new RmsNorm(w, 1e-5); // takes w over

        var (fusedOut, fusedGrad) = Run(norm.forward, x0, upstream, fused: true);
        var (plainOut, plainGrad) = Run(norm.forward, x0, upstream, fused: false);
        TensorAssert.Equal(plainOut, fusedOut, "output");

        // fp64: w · x / sqrt(mean(x²) + eps), gradient by autograd
        var x64 = x0.to(ScalarType.Float64).requires_grad_(true);
        var y64 = norm.Weight.to(ScalarType.Float64) * x64 * rsqrt(x64.pow(2).mean([-1L], keepdim: true) + 1e-5);
        y64.backward([upstream.to(ScalarType.Float64)]);
        AtLeastAsClose(x64.grad!, plainGrad, fusedGrad);
    }

    [Fact]
    public void FusedRotaryMatchesTheComposedForwardBitForBitAndFp64AutogradInBackward()
    {
        using var scope = NewDisposeScope();
        var g = new Generator(22);
        var rope = new RotaryEmbedding(10000, null, 16);
        var positions = arange(0, 7L).unsqueeze(0).expand(2, 7);
        var (cos, sin) = rope.CosSin(positions, ScalarType.BFloat16);
        var x0 = randn([2, 7, 3, 16], generator: g).to(ScalarType.BFloat16).transpose(1, 2); // [B, H, T, d] as attention makes it
        var upstream = randn([2, 3, 7, 16], generator: g).to(ScalarType.BFloat16);

        Tensor Rope(Tensor x) => RotaryEmbedding.Apply(x, cos, sin);
        var (fusedOut, fusedGrad) = Run(Rope, x0, upstream, fused: true);
        var (plainOut, plainGrad) = Run(Rope, x0, upstream, fused: false);
        TensorAssert.Equal(plainOut, fusedOut, "output");

        // fp64 rotate_half written as transformers does: x·cos + cat(−x₂, x₁)·sin, with unsigned sin
        var x64 = x0.to(ScalarType.Float64).requires_grad_(true);
        var c64 = cos.to(ScalarType.Float64);
        var s64 = sin.to(ScalarType.Float64).narrow(-1, 8, 8).repeat(1, 1, 1, 2);
        var rotated = cat([-x64.narrow(-1, 8, 8), x64.narrow(-1, 0, 8)], -1);
        (x64 * c64 + rotated * s64).backward([upstream.to(ScalarType.Float64)]);
        AtLeastAsClose(x64.grad!, plainGrad, fusedGrad);
    }

    [Theory]
    [InlineData(16)]
    [InlineData(4)]
    public void ATrainingLossAndItsAdapterGradientsAgreeFusedAndUnfused(int bits) =>
        LossAndGradientsAgree(bits, ["q_proj", "k_proj", "v_proj", "down_proj"], train: false);

    /// <summary>In training mode the fused step also takes attention's heads node (RoPE and GQA's repeat of k and v),
    /// the LoRA node's output kernels and the matmul nodes on rows; no dropout (LoRA's is 0), and a padding mask of ones
    /// on both sides, so that both attend through the same explicit mask (the causal flag has its own test).</summary>
    [Theory]
    [InlineData(16)]
    [InlineData(4)]
    public void ATrainingModeLossAndItsAdapterGradientsAgreeFusedAndUnfused(int bits) =>
        LossAndGradientsAgree(bits, ["q_proj", "k_proj", "v_proj", "o_proj", "down_proj"], train: true);

    private static void LossAndGradientsAgree(int bits, string[] targets, bool train)
    {
        using var model = ModelLoading.LoadModel(SeededLlama.Folder, new ModelLoadOptions { DType = ScalarType.BFloat16 }.WithBits(bits));
        // α/r = 2: the node's s·(x·Aᵀ)·Bᵀ and PEFT's (x·Aᵀ·Bᵀ)·s round alike
        LoraInjector.Apply(model, new LoraConfig { Rank = 4, Alpha = 8, Dropout = 0, TargetModules = targets }, seed: 3);
        LoraTestKit.Randomize(model, LoraLinear.DefaultAdapter, seed: 5);
        if (train) model.train(); else model.eval();
        var parameters = LoraInjector.AdapterParameters(model).Select(p => p.P).ToList();
        using var ids = randint(3, SeededLlama.Stories260KShapes.VocabSize, [2, 12], generator: new Generator(8));
        using var padMask = train ? ones([2, 12], ScalarType.Int64) : null;

        (float Loss, Tensor[] Grads) Step(bool fused)
        {
            using var mode = TrainingFusions.Override(fused);
            foreach (var p in parameters) p.grad?.zero_();
            using var scope = NewDisposeScope();
            var logits = model.Forward(ids, padMask);
            var loss = nn.functional.cross_entropy(logits.narrow(1, 0, 11).reshape(-1, logits.shape[2]), ids.narrow(1, 1, 11).reshape(-1));
            loss.backward();
            return (loss.item<float>(), parameters.Select(p => p.grad!.clone().MoveToOuterDisposeScope()).ToArray());
        }

        var (plainLoss, plainGrads) = Step(fused: false);
        var (fusedLoss, fusedGrads) = Step(fused: true);
        Assert.Equal(plainLoss, fusedLoss); // forwards are bit-identical
        for (int i = 0; i < parameters.Count; i++)
        {
            double scale = TensorAssert.MaxAbs(plainGrads[i]);
            Assert.True(scale > 0, $"adapter gradient {i} is zero: the check would pass vacuously");
            TensorAssert.MaxDiffAtMost(plainGrads[i], fusedGrads[i], scale / 16, $"adapter gradient {i}");
        }
    }

    private static (Tensor Output, Tensor Grad) Run(Func<Tensor, Tensor> f, Tensor x0, Tensor upstream, bool fused)
    {
        using var mode = TrainingFusions.Override(fused);
        var x = x0.detach().clone().requires_grad_(true);
        var y = f(x);
        y.backward([upstream]);
        return (y.detach(), x.grad!.clone());
    }

    /// <summary>The fused gradient's largest error against fp64 is at most the composed path's plus one bf16 rounding of
    /// the gradient's largest value.</summary>
    private static void AtLeastAsClose(Tensor reference, Tensor plain, Tensor fused)
    {
        double Error(Tensor t) => (t.to(ScalarType.Float64) - reference).abs().max().item<double>();
        double scale = reference.abs().max().item<double>();
        Assert.True(Error(fused) <= Error(plain) + scale / 256, $"fused gradient error {Error(fused):G3}, composed {Error(plain):G3}, scale {scale:G3}");
        Assert.True(Error(fused) <= scale / 64, $"fused gradient error {Error(fused):G3} against fp64 at scale {scale:G3}");
    }
}
