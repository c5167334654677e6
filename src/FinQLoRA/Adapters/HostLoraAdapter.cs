using FinQLoRA.Models;
using static TorchSharp.torch;

namespace FinQLoRA.Adapters;

/// <summary>
/// One adapter's weights in host memory, fp32 on the CPU, detached from any model: what a server reads from a PEFT
/// folder off the scheduler thread and keeps after the adapter leaves the compute device, so that putting it back
/// (<see cref="Install"/>) is a copy rather than a read of the disk.
/// </summary>
public sealed class HostLoraAdapter : IDisposable
{
    /// <summary>One projection's A [r, in], B [out, r] and DoRA magnitude m [out] (null for plain LoRA).</summary>
    public sealed record Part(int Layer, ProjectionKind Projection, Tensor A, Tensor B, Tensor? Magnitude, double Scaling, double Dropout);

    public HostLoraAdapter(IReadOnlyList<Part> parts)
    {
        Parts = parts;
        Bytes = parts.Sum(p => (p.A.numel() + p.B.numel() + (p.Magnitude?.numel() ?? 0)) * sizeof(float));
    }

    public IReadOnlyList<Part> Parts { get; }
    /// <summary>Host memory the weights take.</summary>
    public long Bytes { get; }

    /// <summary>Copies the adapter's weights out of <paramref name="model"/> (an adapter put into the model by other
    /// code, which no folder can give back).</summary>
    public static HostLoraAdapter FromModel(DecoderModel model, string name)
    {
        using var noGrad = no_grad();
        var parts = new List<Part>();
        foreach (var w in LoraInjector.Wrapped(model))
        {
            if (!w.Lora.Adapters.TryGetValue(name, out var a)) continue;
            parts.Add(new Part(w.Layer, w.Projection, Host(a.A), Host(a.B), a.Magnitude is null ? null : Host(a.Magnitude), a.Scaling, a.Dropout));
        }
        if (parts.Count == 0) throw new ArgumentException($"the model has no adapter '{name}'", nameof(name));
        return new HostLoraAdapter(parts);
    }

    /// <summary>Puts the weights into <paramref name="model"/> as adapter <paramref name="name"/>, on each projection's
    /// device (wrapping projections that have no adapter yet). The model's active adapter is left as it was.</summary>
    public void Install(DecoderModel model, string name)
    {
        if (LoraInjector.AdapterNames(model).Contains(name))
            throw new UserInputException($"the model already has an adapter named '{name}'; delete it first or load this one under another name");
        using var noGrad = no_grad();
        foreach (var p in Parts)
        {
            var lora = LoraInjector.Wrap(LoraInjector.Owner(model.Layers[p.Layer], p.Projection), p.Projection);
            var device = lora.Device;
            lora.AttachAdapter(new LoraAdapter(name, Device(p.A, device), Device(p.B, device),
                p.Magnitude is null ? null : Device(p.Magnitude, device), p.Scaling, p.Dropout));
        }
    }

    public void Dispose()
    {
        foreach (var p in Parts)
        {
            p.A.Dispose();
            p.B.Dispose();
            p.Magnitude?.Dispose();
        }
    }

    private static Tensor Host(Tensor t) => Copy(t, CPU);

    private static Tensor Device(Tensor t, Device device) => Copy(t, device);

    /// <summary>A fresh fp32 copy (cloned even where .to hands back the same storage), owned by nobody's dispose scope;
    /// the intermediate handles die with the scope.</summary>
    internal static Tensor Copy(Tensor t, Device device)
    {
        using var scope = NewDisposeScope();
        return t.detach().to(ScalarType.Float32, device).clone().DetachFromDisposeScope();
    }
}
