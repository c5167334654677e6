using FinQLoRA.Loading;
using FinQLoRA.Models;
using static TorchSharp.torch;

namespace FinQLoRA.Demo.RandomModels;

/// <summary>
/// A seeded random model built where it runs: weights made on the device by <see cref="RandomCheckpointReader"/>,
/// converted or quantized there by the model loader one tensor at a time (NF4 with double quantization at 4 bits,
/// LLM.int8 at 8, bf16 dense at 16), so peak memory stays near the final model's size, as when loading a checkpoint.
/// </summary>
public static class RandomModel
{
    public static DecoderModel Build(ModelConfig config, Device device, int bits, long seed, ScalarType dtype = ScalarType.BFloat16)
    {
        using var reader = new RandomCheckpointReader(config, seed, dtype, device);
        return ModelLoader.Load(config, reader, new ModelLoadOptions { DType = dtype, Device = device }.WithBits(bits));
    }
}
