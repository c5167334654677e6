using FinQLoRA.Runtime;
using Spectre.Console.Cli;

namespace FinQLoRA.Cli.Commands;

internal sealed class VersionCommand : Command
{
    public override int Execute(CommandContext context, CancellationToken cancellationToken)
    {
        Console.WriteLine($"finqlora {typeof(TorchNativeLoader).Assembly.GetName().Version}");
        // TorchSharp's torch.__version__ is the libtorch it was built for, not necessarily the one loaded.
        if (TorchNativeLoader.ExternalVersion is { } external)
            Console.WriteLine($"libtorch {external} from FINQLORA_LIBTORCH_DIR={Environment.GetEnvironmentVariable("FINQLORA_LIBTORCH_DIR")} (native loader: {TorchNativeLoader.Mode}; TorchSharp is built for libtorch {TorchSharp.torch.__version__})");
        else
            Console.WriteLine($"libtorch {TorchSharp.torch.__version__} (native loader: {TorchNativeLoader.Mode})");
        Console.WriteLine($"cuda available: {TorchSharp.torch.cuda.is_available()}");
        Console.WriteLine($"cpu 16-bit matmuls: {(CpuMatmulPrecision.WidensHalfPrecision ? "widened to fp32 (no AVX-512 bf16 GEMM)" : "native")} ({CpuMatmulPrecision.Variable}={Environment.GetEnvironmentVariable(CpuMatmulPrecision.Variable) ?? "auto"})");
        return 0;
    }
}
