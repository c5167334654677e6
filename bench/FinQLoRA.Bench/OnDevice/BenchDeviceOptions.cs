using FinQLoRA.Demo.RandomModels;
using FinQLoRA.Models;
using FinQLoRA.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Bench.OnDevice;

/// <summary>
/// The one parser of where a benchmark runs: <c>--device cpu|cuda|cuda:N</c> and <c>--shape tiny|100m|8b</c> (the
/// random model built on that device, <see cref="RandomModelShapes"/>), taken out of a bench's arguments before its own
/// options are read. A CUDA device on a machine or build without CUDA is refused here, before any work, with the
/// message <see cref="ComputeDevice.ToTorch"/> gives (the bench's entry point prints it as one line, exit 2).
/// </summary>
internal sealed record BenchDeviceOptions(ComputeDevice Device, string ShapeName, string[] Rest)
{
    public const string Help = "--device cpu|cuda|cuda:N (default cpu) --shape tiny|100m|8b (default 8b)";

    public ModelConfig Shape => RandomModelShapes.Get(ShapeName);

    /// <summary>Whether <paramref name="args"/> ask for the device benches (either option present).</summary>
    public static bool Requested(string[] args) => args.Contains("--device") || args.Contains("--shape");

    public static BenchDeviceOptions Take(string[] args)
    {
        var device = ComputeDevice.Cpu;
        string shape = "8b";
        var rest = new List<string>();
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new UserInputException($"{args[i]} needs a value ({Help})");
            switch (args[i])
            {
                case "--device":
                    string text = Next();
                    device = ComputeDevice.TryParse(text, out var d) ? d
                        : throw new UserInputException($"--device '{text}' is not one of cpu, cuda, cuda:N");
                    break;
                case "--shape": shape = Next(); break;
                default: rest.Add(args[i]); break;
            }
        }
        var options = new BenchDeviceOptions(device, shape, [.. rest]);
        _ = options.Shape; // an unknown shape fails now, naming --shape
        if (device.IsCuda && !cuda.is_available())
            throw new UserInputException($"--device {device}: CUDA is not available in this build or on this machine (set FINQLORA_LIBTORCH_DIR to a CUDA libtorch, docs/gpu.md), or use --device cpu");
        return options;
    }

    /// <summary>The torch device (after <see cref="Take"/> has checked that CUDA is there).</summary>
    public Device Torch => Device.IsCuda ? Device.ToTorch("device") : CPU;

    /// <summary>Waits for the device's queued work, so a stopwatch read after it times that work.</summary>
    public static void Synchronize(Device device)
    {
        if (device.type == DeviceType.CUDA) cuda.synchronize(device);
    }
}
