using TorchSharp;

namespace FinQLoRA.Formats.Checkpoints;

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

    /// <summary>
    /// Reads one tensor in its stored dtype as a view of the file where the reader can map it (no copy: the pages are
    /// the file's, mapped copy-on-write, so writing into the tensor never changes the file), else as <see cref="Read"/>.
    /// For tensors kept as they are stored (weights, norms, packed 4/8-bit data): one converted afterwards is better
    /// read with <see cref="Read"/>, which leaves no mapped pages behind.
    /// </summary>
    torch.Tensor ReadShared(string name) => Read(name);

    /// <summary>
    /// Reads every tensor whose name starts with <paramref name="prefix"/> (e.g. "model.layers.0.mlp.up_proj."), in
    /// stored dtypes: the several entries one bitsandbytes-quantized layer is saved as, as views of the file when
    /// <paramref name="shared"/> (<see cref="ReadShared"/>). The caller disposes them.
    /// </summary>
    Dictionary<string, torch.Tensor> ReadPrefixed(string prefix, bool shared = false)
    {
        var found = new Dictionary<string, torch.Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (var e in Entries)
                if (e.Name.StartsWith(prefix, StringComparison.Ordinal)) found[e.Name] = shared ? ReadShared(e.Name) : Read(e.Name);
        }
        catch
        {
            foreach (var t in found.Values) t.Dispose();
            throw;
        }
        return found;
    }
}
