using FinQLoRA.Debugging;

namespace FinQLoRA.Cli.Commands;

/// <summary>The lines a debug dump prints: what it wrote, for a script's log.</summary>
internal static class DebugDumpOutput
{
    public static void Print(DebugDumpResult result)
    {
        Console.WriteLine($"wrote {result.File} ({result.Tensors.Count} tensors) and {result.Record}");
    }
}
