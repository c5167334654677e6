using FinQLoRA.Runtime;
using Spectre.Console.Cli;

namespace FinQLoRA.Cli.Commands;

internal sealed class VersionCommand : Command
{
    public override int Execute(CommandContext context, CancellationToken cancellationToken)
    {
        Console.WriteLine($"finqlora {typeof(TorchNativeLoader).Assembly.GetName().Version}");
        string from = TorchNativeLoader.Mode.StartsWith("external", StringComparison.Ordinal)
            ? $", FINQLORA_LIBTORCH_DIR={Environment.GetEnvironmentVariable("FINQLORA_LIBTORCH_DIR")}"
            : "";
        Console.WriteLine($"libtorch {TorchSharp.torch.__version__} (native loader: {TorchNativeLoader.Mode}{from})");
        Console.WriteLine($"cuda available: {TorchSharp.torch.cuda.is_available()}");
        return 0;
    }
}
