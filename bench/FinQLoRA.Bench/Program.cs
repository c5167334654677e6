using FinQLoRA.Bench;
using FinQLoRA.Runtime;

// Benchmarks print ratios against a baseline measured in the same run. Usage: dotnet run -c Release -- <mode>
TorchNativeLoader.EnsureLoaded();
var modes = new Dictionary<string, Func<string[], int>>(StringComparer.OrdinalIgnoreCase)
{
    ["quant"] = QuantBench.Run,
};
if (args.Length == 0 || !modes.TryGetValue(args[0], out var run))
{
    Console.Error.WriteLine($"usage: FinQLoRA.Bench <{string.Join("|", modes.Keys)}> [options]");
    return 2;
}
return run(args[1..]);
