using FinQLoRA.Bench;
using FinQLoRA.Runtime;

// Benchmarks print ratios against a baseline measured in the same run; never assert timings in unit tests.
// Run: dotnet run -c Release --project bench/FinQLoRA.Bench -- <name> [options]
try
{
    TorchNativeLoader.EnsureLoaded();
}
catch (FinQLoRA.UserInputException e) // a bad FINQLORA_LIBTORCH_DIR: one line, as in the CLI
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 2;
}
var benches = new Dictionary<string, (string Help, Func<string[], int> Run)>
{
    ["train"] = (FinQLoRA.Bench.TrainStepBench.Help + "; --packing: TFNS tokens/s with vs without sample packing; " + FinQLoRA.Bench.DpTrainBench.Help, FinQLoRA.Bench.TrainStepBench.Run),
    ["ddp"] = ("data parallel via mpirun: 1x2 vs 2x1 threads tokens/s; AdamW vs 0/1 Adam bytes/step and loss.png", FinQLoRA.Bench.DdpBench.Run),
    ["quant"] = ("4/8-bit linear fwd+bwd vs bf16, dequantization GB/s vs copy bandwidth [--quick] [--dequant]", QuantBench.Run),
    ["generate"] = (FinQLoRA.Bench.GenerationBench.Help, FinQLoRA.Bench.GenerationBench.Run),
    ["pipeline"] = (FinQLoRA.Bench.PipelineBench.Help, FinQLoRA.Bench.PipelineBench.Run),
    ["load"] = (FinQLoRA.Bench.LoadMemoryBench.Help + "; " + FinQLoRA.Bench.PrequantizedLoadBench.Help, FinQLoRA.Bench.LoadMemoryBench.Run),
    ["memory"] = (FinQLoRA.Bench.TrainMemoryBench.Help, FinQLoRA.Bench.TrainMemoryBench.Run),
    ["serve"] = (FinQLoRA.Bench.ServeBench.Help, FinQLoRA.Bench.ServeBench.Run),
    ["constrained"] = (FinQLoRA.Bench.ConstrainedDecodingBench.Help, FinQLoRA.Bench.ConstrainedDecodingBench.Run),
    ["optimizer"] = (FinQLoRA.Bench.OptimizerBench.Help, FinQLoRA.Bench.OptimizerBench.Run),
    ["audit"] = (FinQLoRA.Bench.AuditBench.Help, FinQLoRA.Bench.AuditBench.Run),
};
if (args.Length == 0 || !benches.TryGetValue(args[0], out var bench))
{
    Console.WriteLine("usage: FinQLoRA.Bench <bench> [options]");
    foreach (var (name, (help, _)) in benches) Console.WriteLine($"  {name,-12} {help}");
    Console.WriteLine($"  train, generate and memory {FinQLoRA.Bench.OnDevice.DeviceBench.Help}");
    return args.Length == 0 ? 0 : 2;
}
// A bench variant named by its flag comes first: its own --shape (76m|1b) is not the device benches' shape.
if (args[0] == "train" && args.Contains(FinQLoRA.Bench.PackingBench.Flag)) return FinQLoRA.Bench.PackingBench.Run(args[1..]);
if (args[0] == "load" && args.Contains(FinQLoRA.Bench.PrequantizedLoadBench.Flag)) return FinQLoRA.Bench.PrequantizedLoadBench.Run(args[1..]);
if (args[0] == "train" && args.Contains(FinQLoRA.Bench.DpTrainBench.Flag)) return FinQLoRA.Bench.DpTrainBench.Run(args[1..]);
if (args[0] == "generate" && args.Contains(FinQLoRA.Bench.QuantizedGenerationBench.Flag)) return FinQLoRA.Bench.QuantizedGenerationBench.Run(args[1..]);
try
{
    // --device or --shape: the random model on that device, one child process per configuration (OnDevice/DeviceBench.cs)
    if (args[0] is "train" or "generate" or "memory" && FinQLoRA.Bench.OnDevice.BenchDeviceOptions.Requested(args[1..]))
        return FinQLoRA.Bench.OnDevice.DeviceBench.Run(args[0], args[1..]);
}
catch (FinQLoRA.UserInputException e) // bad bench input: one line, before any work
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 2;
}
return bench.Run(args[1..]);
