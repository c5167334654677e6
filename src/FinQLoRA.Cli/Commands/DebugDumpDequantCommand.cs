using FinQLoRA.Debugging;
using Spectre.Console.Cli;

namespace FinQLoRA.Cli.Commands;

/// <summary><c>finqlora debug dump-dequant --model PATH [--bits 4|8 ...] [--device D] --out FILE</c>.</summary>
internal sealed class DebugDumpDequantCommand : Command<DebugDumpSettings>
{
    public override int Execute(CommandContext context, DebugDumpSettings s, CancellationToken cancellationToken)
    {
        var result = DequantDump.Run(new DequantDumpOptions { ModelPath = s.Model, Load = s.QuantizedLoadOptions(), OutPath = s.Out, Overwrite = s.Overwrite });
        DebugDumpOutput.Print(result);
        return 0;
    }
}
