using FinQLoRA.Quantization;
using FinQLoRA.Quantization.Gemv;
using FinQLoRA.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Quantization.Gemv;

/// <summary>The managed activation quantizer of the fused int8 gemv against the torch one it replaces
/// (<see cref="LlmInt8.QuantizeActivations"/>): the same codes, row scales and outlier columns, value for value.</summary>
public sealed class Int8RowQuantizerTests
{
    static Int8RowQuantizerTests() => TorchNativeLoader.EnsureLoaded();

    [Theory]
    [InlineData(1, 0.0)]
    [InlineData(1, 6.0)]
    [InlineData(5, 6.0)]
    [InlineData(8, 0.0)]
    [InlineData(8, 6.0)]
    public unsafe void GivesTheTorchCodesScalesAndColumns(int rows, double threshold)
    {
        using var scope = NewDisposeScope();
        const int inF = 300;
        Tensor x = randn([rows, inF], generator: new Generator((ulong)(rows * 10 + (int)threshold))) * 2;
        x[0, 17] = 9.5f;                        // an outlier column from one row
        x[rows - 1, 250] = -7f;                 // another, from the last row
        x[rows - 1, 3] = 6f;                    // exactly at the threshold: an outlier (|x| ≥ threshold)
        if (rows > 2) x[1] = zeros([inF]);      // a zero row: scale 0, codes 0
        x = x.contiguous();
        using Int8Activations expected = LlmInt8.QuantizeActivations(x, threshold);
        var codes = new short[rows * inF];
        var scales = new float[rows];
        var columns = new long[inF];
        int count;
        fixed (short* c = codes)
        fixed (float* s = scales)
        fixed (long* cols = columns)
            count = Int8RowQuantizer.Quantize((float*)TensorMemory.DataPointer(x), rows, inF, threshold, c, s, cols);
        Assert.Equal(expected.OutlierColumns.data<long>().ToArray(), columns[..count]);
        Assert.Equal(expected.SCA.data<float>().ToArray(), scales);
        Assert.Equal(expected.CA.to(ScalarType.Int16).data<short>().ToArray(), codes);
        if (threshold > 0) Assert.Subset(columns[..count].ToHashSet(), new HashSet<long> { 3, 17, 250 }); // the injected ones among them
    }
}
