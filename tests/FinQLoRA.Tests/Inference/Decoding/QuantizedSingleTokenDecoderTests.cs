using FinQLoRA.Inference;
using FinQLoRA.Inference.Decoding;
using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Quantization;
using FinQLoRA.Serving;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Inference.Decoding;

/// <summary>
/// The managed single-token step over 4-bit weights (the fused gemv kernel on the step's own fp32 vectors) against the
/// libtorch step over the same model (dequantize-then-matmul in fp32): the same greedy ids and logits to fp32
/// summation noise, NF4 and FP4, plain and double-quantized scales, on stories260K's shapes (the vector kernel for
/// most products, the scalar one for down_proj's 172 inputs) and on layers wide enough for the threaded step; and over
/// LLM.int8 weights (the int8 gemv kernel, outlier columns included).
/// </summary>
public sealed class QuantizedSingleTokenDecoderTests
{
    /// <summary>Layers of ~1.1M weights: the step splits them over the torch threads.</summary>
    private static readonly Lazy<string> WideFolder = new(() =>
    {
        var temp = new TempFolder();
        AppDomain.CurrentDomain.ProcessExit += (_, _) => temp.Dispose();
        return SeededLlama.Write(temp.PathOf("wide-4bit"), SeededLlama.WideShapes, seed: 23);
    });

    private static readonly long[] Prompt = [1, 403, 407, 261, 378, 90, 44];

    [Theory]
    [InlineData("stories", FourBitType.Nf4, true)]
    [InlineData("stories", FourBitType.Fp4, false)]
    [InlineData("wide", FourBitType.Nf4, true)]
    public void FourBitStepsGiveTheLibtorchIdsAndLogits(string which, FourBitType type, bool doubleQuant)
    {
        string folder = which == "wide" ? WideFolder.Value : SeededLlama.Folder;
        using var model = ModelLoading.LoadModel(folder, new ModelLoadOptions { DType = ScalarType.Float32 }.WithBits(4, type, doubleQuant));
        Assert.IsType<QuantizedLinear>(model.Layers[0][ProjectionKind.Down]);
        using var noGrad = no_grad();
        Assert.NotNull(SingleTokenDecoder.TryCreate(model));
        var (managedIds, managedLogits, managedSteps) = Decode(model, managed: true, steps: 24);
        Assert.Equal(24, managedSteps);
        var (torchIds, torchLogits, torchSteps) = Decode(model, managed: false, steps: 24);
        Assert.Equal(0, torchSteps);
        Assert.Equal(torchIds, managedIds);
        for (int i = 0; i < torchLogits.Count; i++) TensorAssert.Close(torchLogits[i], managedLogits[i], rtol: 1e-4, atol: 1e-4);
    }

    [Fact]
    public void GenerateAtBatchOneOnAFourBitModelGivesTheLibtorchText()
    {
        using var model = ModelLoading.LoadModel(SeededLlama.Folder, new ModelLoadOptions { DType = ScalarType.Float32 }.WithBits(4));
        var tokenizer = ModelLoading.LoadTokenizer(SeededLlama.Folder);
        var options = new GenerationOptions { MaxNewTokens = 24, Temperature = 0 };
        var generator = new TextGenerator(model, tokenizer);
        string managed = generator.Generate(["Shares of Acme"], options)[0].Text;
        Assert.True(generator.ManagedSteps > 0, "generate at batch 1 on a 4-bit model did not take the managed step");
        string torch = new TextGenerator(model, tokenizer) { ManagedDecodeStep = false }.Generate(["Shares of Acme"], options)[0].Text;
        Assert.Equal(torch, managed);
        Assert.NotEmpty(managed);
    }

    /// <summary>LLM.int8 weights through the int8 gemv kernel on the step's own vectors, with a threshold that gives
    /// every product outlier columns (<see cref="EightBitLoading"/>) and with the default 6.0. The codes are the
    /// libtorch step's where the normalised input is (fp32 summation order can move a value across a code's rounding
    /// boundary, one code step in 254 of the row's range), so logits agree to 1e-3 and greedy ids are the same.</summary>
    [Theory]
    [InlineData("stories", EightBitLoading.OutlierThreshold)]
    [InlineData("stories", 6.0)]
    [InlineData("wide", EightBitLoading.OutlierThreshold)]
    public void EightBitStepsGiveTheLibtorchIdsAndLogits(string which, double threshold)
    {
        string folder = which == "wide" ? WideFolder.Value : SeededLlama.Folder;
        using var model = ModelLoading.LoadModel(folder, new ModelLoadOptions { DType = ScalarType.Float32 }.WithInt8(threshold));
        Assert.IsType<Int8RowwiseTensor>(Assert.IsType<QuantizedLinear>(model.Layers[0][ProjectionKind.Down]).Weight);
        using var noGrad = no_grad();
        if (threshold < 6) Assert.True(EightBitLoading.HasOutliers(model, Prompt, threshold), "no outlier columns: the int8 decomposition is not exercised");
        Assert.NotNull(SingleTokenDecoder.TryCreate(model));
        var (managedIds, managedLogits, managedSteps) = Decode(model, managed: true, steps: 24);
        Assert.Equal(24, managedSteps);
        var (torchIds, torchLogits, _) = Decode(model, managed: false, steps: 24);
        Assert.Equal(torchIds, managedIds);
        for (int i = 0; i < torchLogits.Count; i++) TensorAssert.Close(torchLogits[i], managedLogits[i], rtol: 1e-3, atol: 1e-3);
    }

    /// <summary>Prefill through libtorch, then greedy steps through the chosen decode step; the managed steps it took.</summary>
    private static (List<long> Ids, List<Tensor> Logits, long ManagedSteps) Decode(DecoderModel model, bool managed, int steps)
    {
        using var cache = new KvCache(model.Config, 1, Prompt.Length + steps, model.ComputeDType, CPU);
        var logits = model.Forward(tensor(Prompt, [1, Prompt.Length]), null, cache, lastOnly: true);
        var step = DecodeStep.Choose(model, cache, allowManaged: managed);
        var ids = new List<long>();
        var all = new List<Tensor>();
        for (int s = 0; s < steps; s++)
        {
            long next = logits.argmax(-1).item<long>();
            ids.Add(next);
            logits = step.Forward(tensor(new[] { next }, [1, 1]));
            all.Add(logits.to(ScalarType.Float32));
        }
        return (ids, all, step is ManagedDecodeStep m ? m.Steps : 0);
    }
}
