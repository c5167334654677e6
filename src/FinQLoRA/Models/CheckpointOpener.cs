using FinQLoRA.Models.Checkpoints;

namespace FinQLoRA.Models;

/// <summary>Opens a model path of any supported format as a config plus a tensor-by-tensor reader with HF names.</summary>
public static class CheckpointOpener
{
    public static (LlamaConfig Config, ICheckpointReader Reader) Open(string path)
    {
        if (Directory.Exists(path))
        {
            var config = LlamaConfig.Load(path);
            return (config, new HfCheckpointReader(path));
        }
        if (File.Exists(path) && path.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase))
            return OpenGguf(path);
        if (File.Exists(path) && Path.GetFileName(path) == "config.json")
            return Open(Path.GetDirectoryName(Path.GetFullPath(path))!);
        throw new UserInputException($"{path}: not found or not a model; pass a Hugging Face model folder (config.json + *.safetensors) or a .gguf file");
    }

    private static (LlamaConfig, ICheckpointReader) OpenGguf(string path)
    {
        var reader = new Gguf.GgufCheckpointReader(path);
        return (reader.Config, reader);
    }
}
