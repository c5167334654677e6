using FinQLoRA.Options;
using static TorchSharp.torch;

namespace FinQLoRA.Adapters;

/// <summary>
/// The dtypes a saved adapter's weights may be stored in (adapter_model.safetensors' dtype field): F32, BF16 or F16,
/// all three of which PEFT, and <see cref="PeftAdapterFiles.Load"/>, read. A 16-bit file is half the size; training
/// itself always keeps fp32 master weights.
/// </summary>
public static class AdapterDtypes
{
    public static NamedValues<ScalarType> Spellings { get; } = new(
        (ScalarType.Float32, ["fp32", "f32", "float32"]),
        (ScalarType.BFloat16, ["bf16", "bfloat16"]),
        (ScalarType.Float16, ["fp16", "f16", "float16"]));

    /// <summary>
    /// The dtype PEFT saves an adapter in for a base model of <paramref name="baseDtype"/>: fp32 for every base dtype.
    /// PEFT's rule: <c>get_peft_model</c> and <c>PeftModel.from_pretrained</c> take <c>autocast_adapter_dtype=True</c> by
    /// default, and <c>cast_adapter_dtype</c> then upcasts adapter weights created in bf16 or fp16 (the base layer's
    /// dtype) to fp32; <c>save_pretrained</c> writes the state dict as it is. Only with <c>autocast_adapter_dtype=False</c>
    /// would a bf16/fp16 base give a 16-bit adapter — which <c>adapter_dtype bf16</c> / <c>fp16</c> asks for here.
    /// </summary>
    public static ScalarType PeftDefault(ScalarType baseDtype) => baseDtype switch
    {
        ScalarType.BFloat16 or ScalarType.Float16 or ScalarType.Float32 => ScalarType.Float32,
        _ => throw new ArgumentOutOfRangeException(nameof(baseDtype), baseDtype, "not a compute dtype"),
    };
}
