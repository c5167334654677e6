using FinQLoRA.Models;

namespace FinQLoRA.Loading;

/// <summary>
/// A model path classified once: what it is (<see cref="ModelFormat"/>), the checkpoint to read (a folder or a
/// .gguf file) and where its tokenizer lives. Every command and the trainer go through this, so a path means the
/// same thing to loading the weights and to loading the tokenizer.
/// </summary>
public sealed record ModelPath(string Path, ModelFormat Format)
{
    /// <summary>The folder holding config.json and tokenizer.json, or the .gguf file (which embeds both).</summary>
    public string Checkpoint => Path;

    public bool IsGguf => Format == ModelFormat.Gguf;

    /// <summary>The name a model is known by: the folder's name, or the file's without .gguf.</summary>
    public string DisplayName => DisplayNameOf(Path);

    /// <summary><see cref="DisplayName"/> from the path's text alone (nothing is read), for checks before loading.</summary>
    public static string DisplayNameOf(string path)
    {
        string name = System.IO.Path.GetFileName(System.IO.Path.TrimEndingDirectorySeparator(System.IO.Path.GetFullPath(path)));
        return name.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase) ? name[..^".gguf".Length] : name;
    }

    /// <summary>Accepts a Hugging Face folder, its config.json, or a .gguf file; anything else is a one-line error.</summary>
    public static ModelPath Classify(string path)
    {
        if (Directory.Exists(path))
        {
            string folder = path; // kept as given: messages name the path the user typed
            var config = ModelConfig.Load(folder);
            var format = config.QuantizationConfig is not null ? ModelFormat.HfPrequantized
                : File.Exists(System.IO.Path.Combine(folder, "model.safetensors.index.json")) ? ModelFormat.HfSharded
                : ModelFormat.HfFolder;
            return new ModelPath(folder, format);
        }
        if (File.Exists(path) && path.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase))
            return new ModelPath(path, ModelFormat.Gguf);
        if (File.Exists(path) && System.IO.Path.GetFileName(path) == "config.json")
            return Classify(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!);
        throw new UserInputException($"{path}: not found or not a model; pass a Hugging Face model folder (config.json + *.safetensors) or a .gguf file");
    }
}
