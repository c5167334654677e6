using System.Text;
using System.Text.Json;
using FinQLoRA.Quantization;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Debugging;

/// <summary>
/// <c>debug dump-dequant</c> against the bitsandbytes dequantization computed here from the stored entries alone, in
/// plain C# floats: 4-bit w = code[nibble] · absmax[block] (first element in the high nibble; with double quantization
/// absmax = nested_quant_map[absmax code] · nested_absmax[block / 256] + nested_offset, two fp32 operations), LLM.int8
/// w = CB · SCB · (1/127). Every fp32 product is exact IEEE, so the dump must match bit for bit.
/// </summary>
public sealed class DequantDumpTests
{
    [Theory]
    [InlineData(4, "nf4", true)]
    [InlineData(4, "fp4", false)]
    [InlineData(8, "nf4", false)]
    public void DumpIsTheStoredCodesTimesTheirScales(int bits, string kind, bool doubleQuant)
    {
        using var temp = new TempFolder();
        string quantized = temp.PathOf("quantized");
        var options = new QuantizationOptions(Bits: bits, Kind: FourBitTypes.Spellings.Parse(kind, "quant"), DoubleQuant: doubleQuant);
        CheckpointQuantizer.Run(SeededLlama.Folder, quantized, options);
        string output = temp.PathOf("dequant.safetensors");
        DumpFiles.Run("debug", "dump-dequant", "--model", quantized, "--out", output);

        using var scope = NewDisposeScope();
        var dump = DumpFiles.Read(output);
        var stored = DumpFiles.Read(Directory.GetFiles(quantized, "*.safetensors").Single());
        bool IsQuantized(string key) => bits == 4 ? stored.ContainsKey(key + ".absmax") : stored.ContainsKey(key[..^"weight".Length] + "SCB");
        string[] projections = stored.Keys.Where(k => k.EndsWith(".weight", StringComparison.Ordinal) && IsQuantized(k)).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(5 * 7, projections.Length); // 5 layers × q, k, v, o, gate, up, down
        Assert.Equal(projections, dump.Keys.Order(StringComparer.Ordinal));
        foreach (string name in projections)
        {
            float[] expected = bits == 8 ? Int8(stored, name) : FourBit(stored, name);
            Assert.Equal(ScalarType.Float32, dump[name].dtype);
            var want = tensor(expected).reshape(dump[name].shape);
            TensorAssert.BitIdentical(want, dump[name], $"{name} ({bits}-bit {kind}, double quant {doubleQuant})");
        }
    }

    /// <summary>Quantizing as the model loads (<c>--bits 4</c> on the dense folder) dumps what the stored folder dumps.</summary>
    [Fact]
    public void OnTheFlyQuantizationDumpsAsTheStoredFolder()
    {
        using var temp = new TempFolder();
        string quantized = temp.PathOf("quantized");
        CheckpointQuantizer.Run(SeededLlama.Folder, quantized, QuantizationOptions.Nf4);
        DumpFiles.Run("debug", "dump-dequant", "--model", quantized, "--out", temp.PathOf("stored.safetensors"));
        DumpFiles.Run("debug", "dump-dequant", "--model", SeededLlama.Folder, "--bits", "4", "--out", temp.PathOf("fly.safetensors"));
        using var scope = NewDisposeScope();
        var stored = DumpFiles.Read(temp.PathOf("stored.safetensors"));
        var fly = DumpFiles.Read(temp.PathOf("fly.safetensors"));
        Assert.Equal(stored.Keys.Order(), fly.Keys.Order());
        foreach (var (name, t) in stored) TensorAssert.BitIdentical(t, fly[name], name);
    }

    private static float[] FourBit(Dictionary<string, Tensor> stored, string name)
    {
        string stateKey = stored.Keys.Single(k => k.StartsWith(name + ".quant_state.bitsandbytes__", StringComparison.Ordinal));
        using var state = JsonDocument.Parse(Encoding.UTF8.GetString(stored[stateKey].data<byte>().ToArray()));
        int blockSize = state.RootElement.GetProperty("blocksize").GetInt32();
        long n = state.RootElement.GetProperty("shape").EnumerateArray().Aggregate(1L, (p, d) => p * d.GetInt64());
        float[] code = stored[name + ".quant_map"].data<float>().ToArray();
        byte[] packed = stored[name].data<byte>().ToArray();
        float[] absmax;
        if (stored.TryGetValue(name + ".nested_absmax", out var nestedAbsmax))
        {
            int nestedBlock = state.RootElement.GetProperty("nested_blocksize").GetInt32();
            float offset = (float)state.RootElement.GetProperty("nested_offset").GetDouble();
            float[] nestedMap = stored[name + ".nested_quant_map"].data<float>().ToArray();
            float[] scale2 = nestedAbsmax.data<float>().ToArray();
            byte[] codes = stored[name + ".absmax"].data<byte>().ToArray();
            absmax = new float[codes.Length];
            for (int b = 0; b < codes.Length; b++)
            {
                float product = nestedMap[codes[b]] * scale2[b / nestedBlock];
                absmax[b] = product + offset;
            }
        }
        else absmax = stored[name + ".absmax"].data<float>().ToArray();
        var w = new float[n];
        for (long i = 0; i < n; i++)
        {
            int nibble = i % 2 == 0 ? packed[i / 2] >> 4 : packed[i / 2] & 0xF;
            w[i] = code[nibble] * absmax[i / blockSize];
        }
        return w;
    }

    private static float[] Int8(Dictionary<string, Tensor> stored, string name)
    {
        var cb = stored[name];
        long rows = cb.shape[0], cols = cb.shape[1];
        sbyte[] values = cb.data<sbyte>().ToArray();
        float[] scb = stored[name[..^"weight".Length] + "SCB"].data<float>().ToArray();
        const float inverse127 = 1f / 127f;
        var w = new float[rows * cols];
        for (long r = 0; r < rows; r++)
            for (long c = 0; c < cols; c++)
            {
                float product = values[r * cols + c] * scb[r];
                w[r * cols + c] = product * inverse127;
            }
        return w;
    }
}
