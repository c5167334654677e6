using System.ComponentModel;
using FinQLoRA.Debugging;
using Spectre.Console;
using Spectre.Console.Cli;

namespace FinQLoRA.Cli.Commands;

/// <summary><c>finqlora debug dump-logits --model PATH [--adapter DIR] [--bits ...] --prompt TEXT --out FILE</c>.</summary>
internal sealed class DebugDumpLogitsCommand : Command<DebugDumpLogitsCommand.Settings>
{
    public sealed class Settings : DebugDumpSettings
    {
        [CommandOption("--prompt <TEXT>")]
        [Description("the prompt, encoded as generate encodes it")]
        public string Prompt { get; set; } = "";

        [CommandOption("--adapter <DIR>")]
        [Description("a PEFT adapter folder applied to the base")]
        public string? Adapter { get; set; }

        public override ValidationResult Validate() => RequiredOptions.Missing(("--prompt", Prompt)) ?? base.Validate();
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellationToken)
    {
        var result = LogitsDump.Run(new LogitsDumpOptions
        {
            ModelPath = s.Model, Load = s.QuantizedLoadOptions(), Adapter = s.Adapter, Prompt = s.Prompt, OutPath = s.Out, Overwrite = s.Overwrite,
        });
        DebugDumpOutput.Print(result);
        return 0;
    }
}
