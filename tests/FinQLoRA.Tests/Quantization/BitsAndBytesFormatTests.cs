using System.Text;
using FinQLoRA.Quantization;
using FinQLoRA.Runtime;
using TorchSharp;
using static TorchSharp.torch;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Quantization;

public sealed class BitsAndBytesFormatTests
{
    static BitsAndBytesFormatTests() => TorchNativeLoader.EnsureLoaded();

    private static void DisposeAll(Dictionary<string, Tensor> d) { foreach (var t in d.Values) t.Dispose(); }

    [Fact]
    public void FourBitNestedEntriesHaveBitsandbytesKeysDtypesAndShapes()
    {
        using var scope = NewDisposeScope();
        // every block's absmax is 2.0 → offset 2.0, absmax − offset = 0 everywhere
        Tensor w = zeros(4, 64, ScalarType.BFloat16);
        w[.., 0] = tensor(2.0f);
        using var q = Quantizer.Quantize4Bit(w, FourBitType.Nf4);
        var d = BitsAndBytesFormat.ToStateDict(q, "model.layers.0.mlp.up_proj.");
        try
        {
            string p = "model.layers.0.mlp.up_proj.";
            Assert.Equal(new[] { "weight", "weight.absmax", "weight.quant_map", "weight.nested_absmax", "weight.nested_quant_map", "weight.quant_state.bitsandbytes__nf4" }
                .Select(k => p + k), d.Keys);
            Assert.Equal(ScalarType.Byte, d[p + "weight"].dtype);
            Assert.Equal(new long[] { 128, 1 }, d[p + "weight"].shape);
            Assert.Equal(ScalarType.Byte, d[p + "weight.absmax"].dtype);
            Assert.Equal(new long[] { 4 }, d[p + "weight.absmax"].shape);
            Assert.Equal(ScalarType.Float32, d[p + "weight.quant_map"].dtype);
            Assert.Equal(16, d[p + "weight.quant_map"].numel());
            Assert.Equal(ScalarType.Float32, d[p + "weight.nested_absmax"].dtype);
            Assert.Equal(256, d[p + "weight.nested_quant_map"].numel());
            string json = Encoding.UTF8.GetString(TensorBits.Bytes(d[p + "weight.quant_state.bitsandbytes__nf4"]));
            // json.dumps(non_tensor_dict) of QuantState.as_dict(packed=True), in its key order and separators
            Assert.Equal("{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"bfloat16\", \"shape\": [4, 64], " +
                         "\"nested_blocksize\": 256, \"nested_dtype\": \"float32\", \"nested_offset\": 2.0}", json);
        }
        finally { DisposeAll(d); }
    }

    [Theory]
    [InlineData(FourBitType.Nf4, true)]
    [InlineData(FourBitType.Nf4, false)]
    [InlineData(FourBitType.Fp4, true)]
    [InlineData(FourBitType.Fp4, false)]
    public void FourBitRoundTripsThroughTheStateDict(FourBitType type, bool doubleQuant)
    {
        using var scope = NewDisposeScope();
        Tensor w = randn([30, 70], generator: new Generator(6)).to(ScalarType.BFloat16);
        using var q = Quantizer.Quantize4Bit(w, type, doubleQuant: doubleQuant);
        var d = BitsAndBytesFormat.ToStateDict(q, "x.");
        try
        {
            Assert.True(BitsAndBytesFormat.IsQuantized(d, "x."));
            Assert.Equal(doubleQuant ? ScalarType.Byte : ScalarType.Float32, d["x.weight.absmax"].dtype);
            Assert.Equal(doubleQuant, d.ContainsKey("x.weight.nested_absmax"));
            Assert.True(d.ContainsKey("x.weight.quant_state.bitsandbytes__" + (type == FourBitType.Nf4 ? "nf4" : "fp4")));
            using var back = (Blockwise4BitTensor)BitsAndBytesFormat.FromStateDict(d, "x.");
            Assert.Equal(q.Shape, back.Shape);
            Assert.Equal(type, back.Type);
            Assert.Equal(ScalarType.BFloat16, back.OriginalDtype);
            Assert.Equal(q.NestedOffset, back.NestedOffset);
            Assert.Equal(TensorBits.Bf16(q.Dequantize(ScalarType.BFloat16)), TensorBits.Bf16(back.Dequantize(ScalarType.BFloat16)));
        }
        finally { DisposeAll(d); }
    }

    [Theory]
    [InlineData(true, "x.weight.absmax", ScalarType.Float32, "x.weight.absmax: stored as F32, but bitsandbytes stores it as U8 (double-quantized absmax codes)")]
    [InlineData(false, "x.weight.absmax", ScalarType.Int32, "x.weight.absmax: stored as I32, but bitsandbytes stores it as a float")]
    [InlineData(true, "x.weight.quant_map", ScalarType.Int64, "x.weight.quant_map: stored as I64, but bitsandbytes stores it as a float")]
    [InlineData(true, "x.weight.nested_absmax", ScalarType.Int16, "x.weight.nested_absmax: stored as I16, but bitsandbytes stores it as a float")]
    [InlineData(true, "x.weight.quant_state.bitsandbytes__nf4", ScalarType.Int32, "x.weight.quant_state.bitsandbytes__nf4: stored as I32, but bitsandbytes stores it as U8")]
    public void FourBitEntryWithADtypeThatDoesNotFitItsRoleIsRefused(bool doubleQuant, string key, ScalarType dtype, string expected)
    {
        using var scope = NewDisposeScope();
        using var q = Quantizer.Quantize4Bit(randn(8, 64), FourBitType.Nf4, doubleQuant: doubleQuant);
        var d = BitsAndBytesFormat.ToStateDict(q, "x.");
        try
        {
            d[key] = d[key].to(dtype);
            var e = Assert.Throws<UserInputException>(() => BitsAndBytesFormat.FromStateDict(d, "x."));
            Assert.StartsWith(expected, e.Message);
        }
        finally { DisposeAll(d); }
    }

    [Fact]
    public void Int8WeightThatIsNotI8IsRefused()
    {
        using var scope = NewDisposeScope();
        using var q = Quantizer.QuantizeInt8(randn(12, 20));
        var d = BitsAndBytesFormat.ToStateDict(q, "lm.");
        try
        {
            d["lm.weight"] = d["lm.weight"].to(ScalarType.Float32);
            var e = Assert.Throws<UserInputException>(() => BitsAndBytesFormat.FromStateDict(d, "lm."));
            Assert.StartsWith("lm.weight: stored as F32, but bitsandbytes stores it as I8", e.Message);
        }
        finally { DisposeAll(d); }
    }

    [Fact]
    public void ReaderUsesTheStoredCodeTables()
    {
        using var scope = NewDisposeScope();
        using var q = Quantizer.Quantize4Bit(randn(8, 64), FourBitType.Nf4, doubleQuant: false);
        var d = BitsAndBytesFormat.ToStateDict(q);
        try
        {
            d["weight.quant_map"] = d["weight.quant_map"] * 2; // a different table must be honoured
            using var back = BitsAndBytesFormat.FromStateDict(d);
            TensorAssert.MaxDiffAtMost(2 * q.Dequantize(ScalarType.Float32), back.Dequantize(ScalarType.Float32), 0);
        }
        finally { DisposeAll(d); }
    }

    [Fact]
    public void Int8RoundTripsWithScbAndWeightFormat()
    {
        using var scope = NewDisposeScope();
        using var q = Quantizer.QuantizeInt8(randn(12, 20));
        var d = BitsAndBytesFormat.ToStateDict(q, "lm.");
        try
        {
            Assert.Equal(new[] { "lm.weight", "lm.SCB", "lm.weight_format" }, d.Keys);
            Assert.Equal(ScalarType.Int8, d["lm.weight"].dtype);
            Assert.Equal(new long[] { 12, 20 }, d["lm.weight"].shape);
            Assert.Equal(ScalarType.Float32, d["lm.SCB"].dtype);
            Assert.Equal(0, d["lm.weight_format"].dim());
            using var back = BitsAndBytesFormat.FromStateDict(d, "lm.");
            Assert.IsType<Int8RowwiseTensor>(back);
            Assert.Equal(TensorBits.F32(q.Dequantize(ScalarType.Float32)), TensorBits.F32(back.Dequantize(ScalarType.Float32)));
            d["lm.weight_format"] = tensor((byte)1);
            Assert.Throws<UserInputException>(() => BitsAndBytesFormat.FromStateDict(d, "lm."));
        }
        finally { DisposeAll(d); }
    }

    [Fact]
    public void MissingEntriesAreUserErrorsNamingTheKey()
    {
        using var scope = NewDisposeScope();
        using var q = Quantizer.Quantize4Bit(randn(8, 64), FourBitType.Nf4);
        var d = BitsAndBytesFormat.ToStateDict(q, "m.");
        try
        {
            d.Remove("m.weight.nested_quant_map");
            var e = Assert.Throws<UserInputException>(() => BitsAndBytesFormat.FromStateDict(d, "m."));
            Assert.Contains("m.weight.nested_quant_map", e.Message);
            Assert.Throws<UserInputException>(() => BitsAndBytesFormat.FromStateDict(new Dictionary<string, Tensor>(), "m."));
        }
        finally { DisposeAll(d); }
    }

    [Theory]
    [InlineData(2.0, "2.0")]
    [InlineData(0.0001, "0.0001")]
    [InlineData(1e-5, "1e-05")]
    [InlineData(1.5e-7, "1.5e-07")]
    [InlineData(123456.0, "123456.0")]
    [InlineData(1e16, "1e+16")]
    [InlineData(1234567890123456.0, "1234567890123456.0")]
    [InlineData(-0.25, "-0.25")]
    [InlineData(0.012345678, "0.012345678")]
    public void PythonFloatReprMatchesPython(double value, string expected) => Assert.Equal(expected, PythonFloat.Repr(value));

    [Fact]
    public void Float32OffsetIsWrittenAsPythonPrintsItsDoubleValue()
    {
        // offset.item() turns the float32 into a Python float; json.dumps prints the shortest repr of that double
        Assert.Equal("0.10000000149011612", PythonFloat.Repr(0.1f));
        Assert.Equal("0.012345679104328156", PythonFloat.Repr(0.012345679f));
    }

    [Fact]
    public void QuantizationConfigAsTransformersWritesIt()
    {
        var four = BitsAndBytesConfig.ToJson(QuantizationOptions.Nf4);
        Assert.Equal("{\"_load_in_4bit\":true,\"_load_in_8bit\":false,\"bnb_4bit_compute_dtype\":\"bfloat16\",\"bnb_4bit_quant_storage\":\"uint8\"," +
                     "\"bnb_4bit_quant_type\":\"nf4\",\"bnb_4bit_use_double_quant\":true,\"llm_int8_enable_fp32_cpu_offload\":false," +
                     "\"llm_int8_has_fp16_weight\":false,\"llm_int8_skip_modules\":null,\"llm_int8_threshold\":6.0,\"load_in_4bit\":true," +
                     "\"load_in_8bit\":false,\"quant_method\":\"bitsandbytes\"}", four.ToJsonString());
        Assert.Equal(QuantizationOptions.Nf4, BitsAndBytesConfig.FromJson(four, "config.json"));
        var eight = BitsAndBytesConfig.ToJson(QuantizationOptions.Int8);
        Assert.True(eight["load_in_8bit"]!.GetValue<bool>());
        Assert.False(eight["load_in_4bit"]!.GetValue<bool>());
        var back = BitsAndBytesConfig.FromJson(eight, "config.json");
        Assert.Equal(8, back.Bits);
        Assert.Equal(6.0, back.Int8Threshold);
        Assert.Throws<UserInputException>(() => BitsAndBytesConfig.FromJson(new System.Text.Json.Nodes.JsonObject { ["quant_method"] = "gptq" }, "config.json"));
    }
}
