using FinQLoRA.Adapters;
using FinQLoRA.Adapters.GradientCapture;
using FinQLoRA.Models;
using TorchSharp.Modules;

namespace FinQLoRA.Privacy.PerUnitGradients;

/// <summary>
/// The model's LoRA projections whose active adapter has trainable parameters, each with where its A, B and DoRA
/// magnitude sit in the step's parameter list (-1: not trained, e.g. a frozen A), and a <see cref="LoraGradientCapture"/>
/// installed on it for as long as this object lives (<see cref="Dispose"/> removes every capture, so none outlives a step).
/// </summary>
internal sealed class CapturedAdapters : IDisposable
{
    /// <summary>One projection: its capture and the indices of its trained tensors in the parameter list.</summary>
    public sealed record Entry(LoraLinear Lora, LoraGradientCapture Capture, int A, int B, int Magnitude);

    private readonly List<Entry> _entries = [];

    public IReadOnlyList<Entry> Entries => _entries;

    public CapturedAdapters(DecoderModel model, IReadOnlyList<(string Name, Parameter P)> parameters)
    {
        var index = new Dictionary<IntPtr, int>();
        for (int i = 0; i < parameters.Count; i++) index[parameters[i].P.Handle] = i;
        int IndexOf(Parameter? p) => p is not null && index.Remove(p.Handle, out int i) ? i : -1;
        try
        {
            foreach (var wrapped in LoraInjector.Wrapped(model))
            {
                var lora = wrapped.Lora;
                if (lora.ActiveAdapter is not { } name) continue;
                var adapter = lora.Adapters[name];
                int a = IndexOf(adapter.A), b = IndexOf(adapter.B), m = IndexOf(adapter.Magnitude);
                if (a < 0 && b < 0 && m < 0) continue;
                if (lora.Capture is not null) throw new InvalidOperationException($"{wrapped.ModulePath} already has a gradient capture");
                var capture = new LoraGradientCapture(a >= 0, b >= 0, m >= 0);
                lora.Capture = capture;
                _entries.Add(new Entry(lora, capture, a, b, m));
            }
            if (index.Count > 0)
            {
                string names = string.Join(", ", parameters.Where(p => index.ContainsKey(p.P.Handle)).Select(p => p.Name).Take(3));
                throw new InvalidOperationException($"per-example gradients cover the active LoRA adapters' A, B and DoRA magnitudes only; also trainable: {names}");
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Frees what every capture recorded (between micro-batches).</summary>
    public void ClearRecords()
    {
        foreach (var e in _entries) e.Capture.Clear();
    }

    public void Dispose()
    {
        foreach (var e in _entries)
        {
            e.Capture.Dispose();
            if (ReferenceEquals(e.Lora.Capture, e.Capture)) e.Lora.Capture = null;
        }
        _entries.Clear();
    }
}
