using FinQLoRA.Models;

namespace FinQLoRA.Loading;

/// <summary>How a model path stores its weights.</summary>
public enum ModelFormat
{
    /// <summary>A Hugging Face folder with one model.safetensors.</summary>
    HfFolder,
    /// <summary>A Hugging Face folder with model.safetensors.index.json and shards.</summary>
    HfSharded,
    /// <summary>A Hugging Face folder whose config.json has a bitsandbytes quantization_config (4/8-bit projections).</summary>
    HfPrequantized,
    /// <summary>A llama.cpp .gguf file (weights, config and tokenizer in one file).</summary>
    Gguf,
}
