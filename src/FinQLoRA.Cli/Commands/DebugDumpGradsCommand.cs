using System.ComponentModel;
using FinQLoRA.Adapters;
using FinQLoRA.Debugging;
using FinQLoRA.Options;
using FinQLoRA.Quantization;
using FinQLoRA.Runtime;
using FinQLoRA.Training;
using Spectre.Console;
using Spectre.Console.Cli;

namespace FinQLoRA.Cli.Commands;

/// <summary><c>finqlora debug dump-grads --model PATH --data FILE [--adapter DIR] [LoRA flags] --batch-size B --seed S --out FILE</c>.</summary>
internal sealed class DebugDumpGradsCommand : Command<DebugDumpGradsCommand.Settings>
{
    public sealed class Settings : DebugDumpSettings
    {
        [CommandOption("--data <FILE>")]
        [Description("training data (JSONL or Parquet, as train reads it); the first --batch-size examples, in file order")]
        public string Data { get; set; } = "";

        [CommandOption("--adapter <DIR>")]
        [Description("start from this PEFT adapter (its own rank, alpha, targets, DoRA) instead of a fresh seeded one")]
        public string? Adapter { get; set; }

        [CommandOption("--rank <R>")]
        [DefaultValue(LoraConfig.DefaultRank)]
        public int Rank { get; set; } = LoraConfig.DefaultRank;

        [CommandOption("--alpha <A>")]
        [DefaultValue(LoraConfig.DefaultAlpha)]
        public double Alpha { get; set; } = LoraConfig.DefaultAlpha;

        [CommandOption("--use-dora <BOOL>")]
        [Description("DoRA (true/false)")]
        [DefaultValue("false")]
        public string UseDora { get; set; } = "false";

        [CommandOption("--use-rslora <BOOL>")]
        [Description("rsLoRA scaling alpha/sqrt(r) (true/false)")]
        [DefaultValue("false")]
        public string UseRslora { get; set; } = "false";

        [CommandOption("--targets <LIST>")]
        [Description("LoRA target modules, as train takes them")]
        [DefaultValue("q_proj,k_proj,v_proj")]
        public string Targets { get; set; } = "q_proj,k_proj,v_proj";

        [CommandOption("--max-seq-len <N>")]
        [DefaultValue(512)]
        public int MaxSeqLen { get; set; } = 512;

        [CommandOption("--batch-size <B>")]
        [Description("how many examples from the top of --data make the batch")]
        [DefaultValue(4)]
        public int BatchSize { get; set; } = 4;

        [CommandOption("--seed <S>")]
        [Description("the fresh adapter's init seed, as train's seed")]
        [DefaultValue(42L)]
        public long Seed { get; set; } = 42;

        public override ValidationResult Validate() => RequiredOptions.Missing(("--data", Data)) ?? base.Validate();
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellationToken)
    {
        var config = new TrainConfig
        {
            Model = s.Model, Data = s.Data, Device = ComputeDevice.Parse(s.Device),
            Dtype = ComputeDtypes.Spellings.Parse(s.DType, "dtype"), Bits = WeightBits.Require(s.Bits),
            Quant = FourBitTypes.Spellings.Parse(s.Quant, "quant"), DoubleQuant = BoolText.Parse(s.DoubleQuant, "double_quant"),
            Rank = s.Rank, Alpha = s.Alpha, UseDora = BoolText.Parse(s.UseDora, "use_dora"), UseRslora = BoolText.Parse(s.UseRslora, "use_rslora"),
            Targets = LoraTargets.Parse(s.Targets, "targets"), MaxSeqLen = s.MaxSeqLen, BatchSize = s.BatchSize, Seed = s.Seed, Dropout = 0,
        };
        var result = GradientDump.Run(new GradientDumpOptions { Config = config, Adapter = s.Adapter, OutPath = s.Out, Overwrite = s.Overwrite });
        DebugDumpOutput.Print(result);
        return 0;
    }
}
