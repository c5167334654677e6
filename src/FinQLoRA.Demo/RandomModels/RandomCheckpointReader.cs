using FinQLoRA.Formats.Checkpoints;
using FinQLoRA.Models;
using static TorchSharp.torch;

namespace FinQLoRA.Demo.RandomModels;

/// <summary>
/// A checkpoint that is never written: every tensor of a config's layout is made when it is read, on the device the
/// model is built on, from a generator seeded by the tensor's place in the layout. The loader then converts or
/// quantizes it where it already is, so an 8B model built on a GPU never passes through a file or the host's memory.
/// Unlike a file reader, <see cref="Read"/> returns tensors on <see cref="Device"/>, not on the CPU (the loader moves
/// what it reads to its device, a no-op here).
/// </summary>
public sealed class RandomCheckpointReader : ICheckpointReader
{
    // The values RandomLlama writes: N(0, 0.02) for embeddings, projections, biases and the head; unit norm scales.
    private const double WeightStd = 0.02;

    private readonly ModelConfig _config;
    private readonly long _seed;
    private readonly ScalarType _dtype;
    private readonly Dictionary<string, (LayoutTensor Tensor, int Index)> _byName;

    public RandomCheckpointReader(ModelConfig config, long seed, ScalarType dtype, Device device)
    {
        _config = config;
        _seed = seed;
        _dtype = dtype;
        Device = device;
        var tensors = ModelLayout.Tensors(config).ToList();
        _byName = tensors.Select((t, i) => (t, i)).ToDictionary(p => p.t.HfName, p => p, StringComparer.Ordinal);
        Entries = tensors.Select(t => new TensorEntry(t.HfName, dtype, t.Shape)).ToList();
    }

    public Device Device { get; }

    public string Source => $"random {_config.NumLayers}-layer model (seed {_seed}, on {Device})";

    public IReadOnlyList<TensorEntry> Entries { get; }

    public bool Contains(string name) => _byName.ContainsKey(name);

    /// <summary>The tensor <paramref name="name"/>, the same values for a seed whatever the order of the reads: each
    /// tensor has its own generator, seeded by the model's seed and the tensor's index in the layout.</summary>
    public Tensor Read(string name, ScalarType? dtype = null)
    {
        if (!_byName.TryGetValue(name, out var entry))
            throw new KeyNotFoundException($"{Source}: no tensor '{name}' in the layout of this config");
        var (t, index) = entry;
        var type = dtype ?? _dtype;
        using var scope = NewDisposeScope();
        Tensor made;
        if (t.Role is TensorRole.Norm or TensorRole.FinalNorm)
            made = full(t.Shape, 1 - _config.NormOffset, type, Device); // a unit scale: 1, or 0 where the family scales by 1 + w
        else
        {
            using var generator = new Generator((ulong)(_seed * 1_000_003 + index), Device);
            // drawn in fp32 and rounded once, as RandomLlama does, so the bf16 values are those of an fp32 N(0, σ²) draw
            made = (randn(t.Shape, ScalarType.Float32, Device, generator: generator) * WeightStd).to(type);
        }
        return made.MoveToOuterDisposeScope();
    }

    public void Dispose() { }
}
