using FinQLoRA.Formats.Checkpoints;
using FinQLoRA.Tests.Cli;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Debugging;

/// <summary>Runs a <c>finqlora debug</c> command line in this process and reads back what it wrote.</summary>
internal static class DumpFiles
{
    /// <summary>Runs the line; fails the test with its stderr unless it exits 0.</summary>
    public static void Run(params string[] args)
    {
        var r = InProcessCli.Run(args);
        Assert.True(r.ExitCode == 0, $"finqlora {string.Join(' ', args)} exited {r.ExitCode}: {r.Stderr}");
    }

    /// <summary>Every tensor of a safetensors file (CPU copies; the caller disposes them, e.g. in a dispose scope).</summary>
    public static Dictionary<string, Tensor> Read(string path)
    {
        using var file = new SafetensorsFile(path);
        return file.Entries.ToDictionary(e => e.Name, e => file.Read(e.Name));
    }
}
