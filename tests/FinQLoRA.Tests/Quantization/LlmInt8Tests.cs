using FinQLoRA.Quantization;
using FinQLoRA.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Quantization;

public sealed class LlmInt8Tests
{
    static LlmInt8Tests() => TorchNativeLoader.EnsureLoaded();

    [Fact]
    public void WeightRowsByHand()
    {
        using var scope = NewDisposeScope();
        // row 0: SCB 2, scale 63.5: [1, -2, 0.5] → [63.5, -127, 31.75] → round half even [64, -127, 32]
        // row 1: all zero → SCB 0, CB 0 (no NaN)
        // row 2: SCB 4, scale 31.75: [4, -0.5, 2] → [127, -15.875, 63.5] → [127, -16, 64]
        Tensor w = tensor(new float[] { 1, -2, 0.5f, 0, 0, 0, 4, -0.5f, 2 }).reshape(3, 3);
        using var q = Quantizer.QuantizeInt8(w);
        Assert.Equal(new[] { 2f, 0f, 4f }, TensorBits.Floats(q.SCB));
        Assert.Equal(new sbyte[] { 64, -127, 32, 0, 0, 0, 127, -16, 64 }, q.CB.data<sbyte>().ToArray());
        Assert.Equal(ScalarType.Int8, q.CB.dtype);
        // dequantize = CB · SCB · (1/127)
        float[] back = TensorBits.Floats(q.Dequantize(ScalarType.Float32));
        Assert.Equal(64 * 2f * Int8RowwiseTensor.InverseScale, back[0]);
        Assert.Equal(0f, back[4]);
        // in-place variant gives the same bits in both dtypes
        foreach (var dtype in new[] { ScalarType.Float32, ScalarType.BFloat16 })
        {
            Tensor into = empty([3, 3], dtype);
            q.DequantizeInto(into);
            Assert.Equal(TensorBits.F32(q.Dequantize(dtype)), TensorBits.F32(into));
        }
    }

    [Fact]
    public void OutlierMatmulAgreesWithTheFormulaWorkedByHand()
    {
        using var scope = NewDisposeScope();
        // X = [[1, 8, -2], [0.5, 1, 1]], threshold 6 → X[0,1] = 8 is an outlier, column 1 goes to 16-bit.
        // Non-outlier row absmax: SCA = [2, 1] (X[1,1] = 1 counts: only the outlier entry is zeroed before the max).
        // CA: row 0 = round([63.5, 0, -127]) = [64, 0, -127]; row 1 = round([63.5, 127, 127]) = [64, 127, 127] → column 1 zeroed.
        // W = [[1, -2, 0.5], [0.25, 1, -1]]: SCB = [2, 1]; CB = [[64, -127, 32], [32, 127, -127]].
        Tensor x = tensor(new float[] { 1, 8, -2, 0.5f, 1, 1 }).reshape(2, 3);
        Tensor w = tensor(new float[] { 1, -2, 0.5f, 0.25f, 1, -1 }).reshape(2, 3);
        using var q = Quantizer.QuantizeInt8(w);
        Assert.Equal(new sbyte[] { 64, -127, 32, 32, 127, -127 }, q.CB.data<sbyte>().ToArray());

        using var act = LlmInt8.QuantizeActivations(x, 6.0);
        Assert.Equal(new long[] { 1 }, act.OutlierColumns.data<long>().ToArray());
        Assert.Equal(new[] { 2f, 1f }, TensorBits.Floats(act.SCA));
        Assert.Equal(new sbyte[] { 64, 0, -127, 64, 0, 127 }, act.CA.data<sbyte>().ToArray());

        int[,] ca = { { 64, 0, -127 }, { 64, 0, 127 } };
        int[,] cb = { { 64, -127, 32 }, { 32, 127, -127 } };
        double[] sca = [2, 1], scb = [2, 1];
        double[,] xs = { { 1, 8, -2 }, { 0.5, 1, 1 } };
        var expected = new double[2, 2];
        for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++)
        {
            int dot = 0;
            for (int k = 0; k < 3; k++) dot += ca[i, k] * cb[j, k];
            double outlier = xs[i, 1] * cb[j, 1] * scb[j] / 127;
            expected[i, j] = dot * sca[i] * scb[j] / (127.0 * 127.0) + outlier;
        }
        // e.g. Y[0,0] = (64·64 − 127·32)·2·2/127² + 8·(−127)·2/127 = 32·4/16129 − 16 = −15.99206
        Assert.Equal(-15.99206, expected[0, 0], 5);
        float[] y = TensorBits.Floats(LlmInt8.Linear(x, q, 6.0));
        for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++)
            Assert.Equal(expected[i, j], y[i * 2 + j], 5);

        // threshold 0: no outlier columns, the 8 is quantized with the rest of its row
        using var plain = LlmInt8.QuantizeActivations(x, 0.0);
        Assert.Equal(0, plain.OutlierColumns.numel());
        Assert.Equal(new[] { 8f, 1f }, TensorBits.Floats(plain.SCA));
    }

    [Fact]
    public void Int8LinearIsCloseToTheFullPrecisionProductAndKeepsTheInputDtype()
    {
        using var scope = NewDisposeScope();
        var gen = new Generator(4);
        Tensor w = normal(0, 0.02, [96, 128], generator: gen);
        Tensor x = randn([4, 5, 128], generator: gen);
        x[0, 0, 7] = 9.0f; // one outlier column
        using var q = Quantizer.QuantizeInt8(w);
        Tensor exact = x.matmul(w.t());
        Tensor y = LlmInt8.Linear(x, q, 6.0);
        Assert.Equal(new long[] { 4, 5, 96 }, y.shape);
        double rel = ((y - exact).norm() / exact.norm()).item<float>();
        Assert.True(rel < 0.02, $"relative error {rel}");
        Assert.Equal(ScalarType.BFloat16, LlmInt8.Linear(x.to(ScalarType.BFloat16), q, 6.0).dtype);
    }
}
