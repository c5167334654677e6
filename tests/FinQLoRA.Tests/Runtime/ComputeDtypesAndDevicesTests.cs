using FinQLoRA.Models;
using FinQLoRA.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Runtime;

/// <summary>One compute-dtype parser (every command accepts the same spellings), one device parser, and the
/// torch_dtype names of config.json kept apart as a file format.</summary>
public sealed class ComputeDtypesAndDevicesTests
{
    [Theory]
    [InlineData("bf16", ScalarType.BFloat16)]
    [InlineData("bfloat16", ScalarType.BFloat16)]
    [InlineData("BF16", ScalarType.BFloat16)]
    [InlineData("f32", ScalarType.Float32)]
    [InlineData("fp32", ScalarType.Float32)]
    [InlineData("float32", ScalarType.Float32)]
    [InlineData("f16", ScalarType.Float16)]
    [InlineData("fp16", ScalarType.Float16)]
    [InlineData("float16", ScalarType.Float16)]
    public void EverySpellingOfAComputeDtype(string text, ScalarType expected) => Assert.Equal(expected, ComputeDtypes.Spellings.Parse(text, "dtype"));

    [Theory]
    [InlineData("f64")]
    [InlineData("int8")]
    [InlineData("")]
    public void OtherDtypesAreRefusedNamingTheField(string text) =>
        Assert.Equal($"dtype '{text}' is not one of bf16, f32, f16", Assert.Throws<UserInputException>(() => ComputeDtypes.Spellings.Parse(text, "dtype")).Message);

    [Fact]
    public void ComputeDtypeNamesAreTheShortOnes()
    {
        Assert.Equal("bf16", ComputeDtypes.Spellings.Name(ScalarType.BFloat16));
        Assert.Equal("f32", ComputeDtypes.Spellings.Name(ScalarType.Float32));
        Assert.Equal("dtype Float64 is not one of bf16, f32, f16", Assert.Throws<UserInputException>(() => ComputeDtypes.Require(ScalarType.Float64)).Message);
    }

    [Theory]
    [InlineData("bfloat16", ScalarType.BFloat16)]
    [InlineData("float16", ScalarType.Float16)]
    [InlineData("half", ScalarType.Float16)]
    [InlineData("float32", ScalarType.Float32)]
    [InlineData("float64", ScalarType.Float64)]
    public void TorchDtypeNamesRoundTrip(string name, ScalarType dtype)
    {
        Assert.Equal(dtype, TorchDtypeNames.Parse(name, "config.json torch_dtype"));
        if (name != "half") Assert.Equal(name, TorchDtypeNames.Name(dtype));
    }

    [Fact]
    public void AnUnknownTorchDtypeNamesTheFile() =>
        Assert.Equal("config.json: dtype 'bf16' is not one of bfloat16, float16, float32",
            Assert.Throws<UserInputException>(() => TorchDtypeNames.Parse("bf16", "config.json")).Message);

    [Theory]
    [InlineData("cpu", "cpu")]
    [InlineData("CPU", "cpu")]
    [InlineData("cuda", "cuda")]
    [InlineData("cuda:1", "cuda:1")]
    [InlineData(" Cuda:0 ", "cuda:0")]
    public void DevicesParseAndNameThemselves(string text, string name) => Assert.Equal(name, ComputeDevice.Parse(text).ToString());

    [Theory]
    [InlineData("gpu")]
    [InlineData("cuda:")]
    [InlineData("cuda:x")]
    [InlineData("cuda:-1")]
    [InlineData("")]
    public void OtherDevicesAreRefusedNamingTheField(string text) =>
        Assert.Equal($"device '{text}' is not one of cpu, cuda, cuda:N", Assert.Throws<UserInputException>(() => ComputeDevice.Parse(text)).Message);

    [Fact]
    public void ATorchDeviceMapsBack()
    {
        Assert.Equal(ComputeDevice.Cpu, ComputeDevice.From(CPU));
        Assert.Equal("cuda:1", ComputeDevice.From(new Device(DeviceType.CUDA, 1)).ToString());
        Assert.Equal(DeviceType.CPU, ComputeDevice.Cpu.ToTorch().type);
    }

    [Fact]
    public void CudaWithoutCudaIsRefusedWithTheFix()
    {
        if (cuda.is_available()) return; // the refusal is for machines without a GPU
        var e = Assert.Throws<UserInputException>(() => ComputeDevice.Parse("cuda").ToTorch());
        Assert.StartsWith("device cuda: CUDA is not available", e.Message);
        Assert.EndsWith("or use device cpu", e.Message);
    }
}
