using FinQLoRA.Runtime;
using Spectre.Console.Cli;

namespace FinQLoRA.Cli.Commands;

internal sealed class VersionCommand : Command
{
    public override int Execute(CommandContext context, CancellationToken cancellationToken)
    {
        Console.WriteLine($"finqlora {typeof(TorchNativeLoader).Assembly.GetName().Version}");
        Console.WriteLine($"libtorch {TorchSharp.torch.__version__} (native loader: {TorchNativeLoader.Mode})");
        Console.WriteLine($"cuda available: {TorchSharp.torch.cuda.is_available()}");
        return 0;
    }
}
