using FinQLoRA.Options;
using static TorchSharp.torch;

namespace FinQLoRA.Runtime;

/// <summary>
/// The compute dtypes an option may name (train's dtype, --dtype of the model commands, merge and quantize), in one
/// table so that every command accepts the same spellings: bf16/bfloat16, f32/fp32/float32, f16/fp16/float16.
/// (config.json's torch_dtype names are a file format: <see cref="Models.TorchDtypeNames"/>.)
/// </summary>
public static class ComputeDtypes
{
    public static NamedValues<ScalarType> Spellings { get; } = new(
        (ScalarType.BFloat16, ["bf16", "bfloat16"]),
        (ScalarType.Float32, ["f32", "fp32", "float32"]),
        (ScalarType.Float16, ["f16", "fp16", "float16"]));

    /// <summary><paramref name="dtype"/> when it is a compute dtype; otherwise "<paramref name="field"/> X is not one of bf16, f32, f16".</summary>
    public static ScalarType Require(ScalarType dtype, string field = "dtype") =>
        dtype is ScalarType.BFloat16 or ScalarType.Float32 or ScalarType.Float16 ? dtype
        : throw UserInputException.About($"{new ConfigField(field)} {dtype} is not one of {string.Join(", ", Spellings.Names)}");
}
