using FinQLoRA.Adapters;
using FinQLoRA.Data.Sft;
using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Quantization;
using FinQLoRA.Tests.Adapters;
using FinQLoRA.Tests.Support;
using FinQLoRA.Training;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Training;

/// <summary>The trainer's loss with the chunked vocabulary projection: the full computation's loss and gradients
/// (adapters and hidden states), for bf16 and fp32 compute, untied and tied heads.</summary>
public sealed class ChunkedSupervisedLossTests
{
    private static readonly Lazy<string> TiedFolder = new(() =>
    {
        var temp = new TempFolder();
        AppDomain.CurrentDomain.ProcessExit += (_, _) => temp.Dispose();
        return SeededLlama.Write(temp.PathOf("tied"), SeededLlama.Stories260KShapes with { TieWordEmbeddings = true }, SeededLlama.Seed);
    });

    /// <summary>Right-padded rows with 17 target tokens in all (long completions, not classification), one row with none.</summary>
    private static readonly List<TokenizedExample> Examples =
    [
        new([1, 403, 407, 261, 378, 3, 90, 44, 51, 60, 71], [-100, -100, -100, -100, -100, 3, 90, 44, 51, 60, 71]),
        new([1, 88, 19, 270, 5, 6, 7, 8], [-100, -100, -100, 270, 5, 6, 7, 8]),
        new([1, 88, 19, 270, 301, 45, 12, 7, 9, 300, 301, 302], [-100, -100, -100, -100, -100, -100, 12, 7, 9, 300, 301, 302]),
        new([1, 5, 6], [-100, -100, -100]),
    ];
    private const int TargetRows = 17; // 6 + 5 + 6 + 0

    private static DecoderModel Model(ScalarType dtype, bool tied)
    {
        var model = ModelLoading.LoadModel(tied ? TiedFolder.Value : SeededLlama.Folder, new ModelLoadOptions { DType = dtype });
        LoraInjector.Apply(model, new LoraConfig { Rank = 4, Alpha = 8, TargetModules = [LoraTargets.AllLinear] }, seed: 3);
        LoraTestKit.Randomize(model, LoraLinear.DefaultAdapter, seed: 5);
        model.eval(); // no dropout: every pass sees the same function
        return model;
    }

    private static (float Loss, Tensor[] Grads) LossAndAdapterGrads(DecoderModel model, Func<Tensor> loss)
    {
        var parameters = LoraInjector.AdapterParameters(model).Select(p => p.P).ToList();
        foreach (var p in parameters) p.grad?.zero_();
        using var scope = NewDisposeScope();
        var l = loss();
        l.backward();
        var grads = parameters.Select(p => p.grad!.detach().to(ScalarType.Float32).clone().DetachFromDisposeScope()).ToArray();
        return (l.item<float>(), grads);
    }

    [Theory]
    [InlineData(ScalarType.Float32, false, 3)]
    [InlineData(ScalarType.Float32, true, 7)]
    [InlineData(ScalarType.BFloat16, false, 3)]
    [InlineData(ScalarType.BFloat16, true, 6)]
    public void ChunkedLossGivesTheFullComputationsLossAndGradients(ScalarType dtype, bool tied, long rowsPerChunk)
    {
        using var model = Model(dtype, tied);
        Assert.Equal(tied, model.LmHead is null);
        using var batch = SftCollator.Collate(Examples, padId: 2, CPU);
        var chunks = new List<long>();
        var full = LossAndAdapterGrads(model, () => SupervisedLoss.TokenLoss(model.Forward(batch.InputIds, batch.PadMask), batch.Labels));
        var chunked = LossAndAdapterGrads(model, () => SupervisedLoss.Sum(model, batch, rowsPerChunk, chunks.Add));

        var expected = Enumerable.Repeat(rowsPerChunk, (int)(TargetRows / rowsPerChunk)).ToList();
        if (TargetRows % rowsPerChunk != 0) expected.Add(TargetRows % rowsPerChunk);
        Assert.Equal(expected, chunks); // the forced chunk size was used, and does not divide the 17 rows
        Assert.True(Math.Abs(full.Loss - chunked.Loss) <= 1e-5 * Math.Abs(full.Loss), $"loss {chunked.Loss} vs {full.Loss}");
        double maxGrad = full.Grads.Max(TensorAssert.MaxAbs);
        Assert.True(maxGrad > 0, "no gradient reached the adapters");
        // summation order only: measured 1e-6 relative in fp32, and bf16's roundings hide it (equal at 1e-7)
        const double tolerance = 1e-5;
        for (int i = 0; i < full.Grads.Length; i++)
            TensorAssert.Close(full.Grads[i], chunked.Grads[i], rtol: tolerance, atol: tolerance * maxGrad);
        foreach (var g in full.Grads.Concat(chunked.Grads)) g.Dispose();
    }

    [Theory]
    [InlineData(ScalarType.Float32, false)]
    [InlineData(ScalarType.BFloat16, true)]
    public void HiddenStateGradientIsTheUnchunkedPaths(ScalarType dtype, bool tied)
    {
        using var model = Model(dtype, tied);
        using var batch = SftCollator.Collate(Examples, padId: 2, CPU);
        using var scope = NewDisposeScope();
        Tensor hidden;
        using (no_grad()) hidden = model.Hidden(batch.InputIds, batch.PadMask);
        (Tensor Loss, Tensor Grad) Run(long rowsPerChunk)
        {
            var h = hidden.detach().clone().requires_grad_(true);
            var loss = SupervisedLoss.Sum(model, h, batch.Labels, rowsPerChunk);
            loss.backward();
            return (loss.detach(), h.grad!.detach());
        }
        var unchunked = Run(long.MaxValue);
        var chunked = Run(3);
        TensorAssert.Close(unchunked.Loss, chunked.Loss, rtol: 1e-6);
        // the gradient flows back through the same final norm; only the projection's gradient is made chunk by chunk
        TensorAssert.Close(unchunked.Grad.to(ScalarType.Float32), chunked.Grad.to(ScalarType.Float32), rtol: 1e-5, atol: 1e-7);
    }

    [Fact]
    public void UpToOneChunkOfRowsRunsTheHeadAsBefore()
    {
        using var model = Model(ScalarType.Float32, tied: false);
        using var batch = SftCollator.Collate(Examples, padId: 2, CPU);
        using var scope = NewDisposeScope();
        Tensor hidden;
        using (no_grad()) hidden = model.Hidden(batch.InputIds, batch.PadMask);
        var chunks = new List<long>();
        // the seeded model's 512-token vocabulary gives 16,384 rows per chunk: 17 rows are one chunk, not chunked
        var loss = SupervisedLoss.Sum(model, hidden, batch.Labels, onChunk: chunks.Add);
        var exactlyOneChunk = SupervisedLoss.Sum(model, hidden, batch.Labels, rowsPerChunk: TargetRows, onChunk: chunks.Add);
        Assert.Empty(chunks);
        // bit-identical to the head on the gathered rows, as the loss was computed before chunking existed
        long t = hidden.shape[1];
        var wanted = batch.Labels.narrow(1, 1, t - 1).reshape(-1);
        var rows = nonzero(wanted.ne(TokenizedExample.IgnoreIndex)).squeeze(-1);
        var logits = model.Head(hidden.narrow(1, 0, t - 1).reshape(-1, hidden.shape[2]).index_select(0, rows).unsqueeze(0)).squeeze(0);
        var before = nn.functional.cross_entropy(logits, wanted.index_select(0, rows), reduction: nn.Reduction.Sum);
        Assert.Equal(before.item<float>(), loss.item<float>());
        Assert.Equal(before.item<float>(), exactlyOneChunk.item<float>());
    }

    [Fact]
    public void AHeadThatIsNotADenseMatrixIsNotChunked()
    {
        var config = SeededLlama.Stories260KShapes;
        using var g = new Generator(7);
        using var scope = NewDisposeScope();
        // no decoder layers: the hidden states are the embeddings; lm_head quantized to NF4
        using var model = new DecoderModel(config, ScalarType.Float32, randn([config.VocabSize, config.HiddenSize], generator: g), [],
            new RmsNorm(ones(config.HiddenSize), config.RmsNormEps),
            new QuantizedLinear(Quantizer.Quantize(randn([config.VocabSize, config.HiddenSize], generator: g), QuantizationOptions.Nf4)));
        Assert.Null(model.DenseOutputWeight(ScalarType.Float32));
        using var batch = SftCollator.Collate(Examples, padId: 2, CPU);
        var chunks = new List<long>();
        var loss = SupervisedLoss.Sum(model, batch, rowsPerChunk: 3, onChunk: chunks.Add);
        Assert.Empty(chunks);
        var full = SupervisedLoss.TokenLoss(model.Forward(batch.InputIds, batch.PadMask), batch.Labels);
        TensorAssert.Close(full, loss, rtol: 1e-5);
    }
}
