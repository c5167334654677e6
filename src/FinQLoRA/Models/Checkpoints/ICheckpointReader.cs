using TorchSharp;

namespace FinQLoRA.Models.Checkpoints;

/// <summary>
/// A checkpoint read tensor by tensor, with Hugging Face tensor names and layouts whatever the file format
/// (safetensors folders, GGUF). Reading one tensor at a time is what lets a 70B model load without ever
/// holding two copies of its weights.
/// </summary>
public interface ICheckpointReader : IDisposable
{
    /// <summary>Where the tensors come from, for error messages.</summary>
    string Source { get; }

    IReadOnlyList<TensorEntry> Entries { get; }

    bool Contains(string name);

    /// <summary>Reads one tensor into a new CPU tensor of its stored dtype (or <paramref name="dtype"/> when given).</summary>
    torch.Tensor Read(string name, torch.ScalarType? dtype = null);
}
