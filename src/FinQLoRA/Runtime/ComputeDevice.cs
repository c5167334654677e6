using System.Globalization;
using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Runtime;

/// <summary>
/// Where a model runs, as an option names it: <c>cpu</c>, <c>cuda</c> or <c>cuda:N</c>. One parser for train's device and
/// the model commands' --device; <see cref="ToString"/> gives the name back (run.json, the model card).
/// </summary>
public sealed record ComputeDevice(DeviceType Type, int? Index = null)
{
    public static ComputeDevice Cpu { get; } = new(DeviceType.CPU);

    /// <summary>"cpu, cuda or cuda:N", for the train config's "expected ..." messages.</summary>
    public const string Expected = "cpu, cuda or cuda:N";

    public static bool TryParse(string text, out ComputeDevice device)
    {
        string d = text.Trim().ToLowerInvariant();
        device = Cpu;
        if (d == "cpu") return true;
        if (d == "cuda") { device = new(DeviceType.CUDA); return true; }
        if (d.StartsWith("cuda:", StringComparison.Ordinal) && int.TryParse(d.AsSpan(5), NumberStyles.None, CultureInfo.InvariantCulture, out int index))
        {
            device = new(DeviceType.CUDA, index);
            return true;
        }
        return false;
    }

    /// <summary>The device <paramref name="text"/> names; otherwise "<paramref name="field"/> 'x' is not one of cpu, cuda, cuda:N".</summary>
    public static ComputeDevice Parse(string text, string field = "device") => TryParse(text, out var device) ? device
        : throw UserInputException.About($"{new ConfigField(field)} '{text}' is not one of cpu, cuda, cuda:N");

    /// <summary>The device of a torch tensor or context (e.g. the rank's GPU under mpirun).</summary>
    public static ComputeDevice From(Device device) =>
        device.type == DeviceType.CPU ? Cpu : new(device.type, device.index < 0 ? null : device.index);

    public bool IsCuda => Type == DeviceType.CUDA;

    /// <summary>This device for torch; a CUDA device where this build or machine has none is refused, naming the fix.</summary>
    public Device ToTorch(string field = "device")
    {
        if (!IsCuda) return CPU;
        if (!cuda.is_available())
            throw UserInputException.About($"{new ConfigField(field)} {this}: CUDA is not available in this build or on this machine; on a machine with an NVIDIA GPU build with -p:TorchDevice=cuda or set FINQLORA_LIBTORCH_DIR to a CUDA libtorch (docs/gpu.md), or use {new ConfigField(field)} cpu");
        return Index is int i ? new Device(DeviceType.CUDA, i) : CUDA;
    }

    public override string ToString() => Type == DeviceType.CPU ? "cpu" : Index is int i ? $"cuda:{i}" : "cuda";
}
