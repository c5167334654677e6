using FinQLoRA.Adapters;
using FinQLoRA.Quantization;
using System.Text.Json.Nodes;
using FinQLoRA.Models;
using FinQLoRA.Runtime;
using FinQLoRA.Training.Optimizers;
using FinQLoRA.Training.Schedules;
using static TorchSharp.torch;

namespace FinQLoRA.Training;

/// <summary>
/// Every setting of a fine-tuning run. The same snake_case keys (<see cref="TrainKeys"/>) come from a YAML file
/// (<c>--config</c>) and from flags (<c>--kebab-case</c>, which win). Unknown keys and bad values are rejected with the key named.
/// Defaults are the FinLoRA paper's (lr 1e-4 and, from <see cref="LoraConfig"/>, rank 4, alpha 32, dropout 0.1 on q, k, v at 4-bit).
/// </summary>
public sealed partial record TrainConfig
{
    public string Model { get; init; } = "";
    public string Data { get; init; } = "";
    public string? EvalData { get; init; }
    public double EvalSplit { get; init; }
    public string DataFormat { get; init; } = "auto";
    public string ChatTemplate { get; init; } = "auto";
    public int EvalEvery { get; init; }
    public int EvalSamples { get; init; }
    public string? EvalTask { get; init; }
    public string MetricForBest { get; init; } = "eval_loss";
    public bool SaveBest { get; init; }
    public int EarlyStoppingPatience { get; init; }
    public string ReportTo { get; init; } = "none";
    public string Out { get; init; } = "runs/train";
    public WeightBits Bits { get; init; } = 4;
    public Quantization.FourBitType Quant { get; init; } = Quantization.FourBitType.Nf4;
    public bool DoubleQuant { get; init; } = true;
    public int Rank { get; init; } = LoraConfig.DefaultRank;
    public double Alpha { get; init; } = LoraConfig.DefaultAlpha;
    public double Dropout { get; init; } = LoraConfig.DefaultDropout;
    /// <summary>PEFT target_modules names (or "all-linear"), checked against every family's names here and against the
    /// model's family once its config is read (<see cref="TrainableModel.CheckAdapterFits"/>).</summary>
    public IReadOnlyList<string> Targets { get; init; } = LoraConfig.DefaultTargets;
    public bool UseRslora { get; init; }
    public bool UseDora { get; init; }
    /// <summary>FFA-LoRA: A frozen at its seeded init (<see cref="LoraConfig.FreezeA"/>).</summary>
    public bool LoraAFrozen { get; init; }
    /// <summary>The dtype the adapter/ and best/ exports are saved in; null: PEFT's for the base dtype
    /// (<see cref="AdapterDtypes.PeftDefault"/>). Checkpoints keep fp32 so that a resumed run continues bit-identically.</summary>
    public ScalarType? AdapterDtype { get; init; }
    public ScalarType SavedAdapterDtype => AdapterDtype ?? AdapterDtypes.PeftDefault(Dtype);
    public double Lr { get; init; } = 1e-4;
    public int Epochs { get; init; } = 4;
    public int MaxSteps { get; init; } = -1;
    public int BatchSize { get; init; } = 16;
    public int GradAccum { get; init; } = 1;
    public int MaxSeqLen { get; init; } = 512;
    public OptimizerKind Optimizer { get; init; } = OptimizerKind.AdamW;
    public double WeightDecay { get; init; }
    /// <summary>SGD's momentum factor (<see cref="SgdOptions.Momentum"/>); the other optimizers refuse a non-zero one.</summary>
    public double Momentum { get; init; }
    public LrScheduleKind LrSchedule { get; init; } = LrScheduleKind.Cosine;
    public int WarmupSteps { get; init; } = 10;
    public double MaxGradNorm { get; init; } = 1.0;
    public int SaveEvery { get; init; } = 100;
    public int KeepCheckpoints { get; init; } = 2;
    public int LogEvery { get; init; } = 1;
    public long Seed { get; init; } = 42;
    public bool Resume { get; init; }
    public bool GradCheckpointing { get; init; }
    public bool GroupByLength { get; init; } = true;
    /// <summary>Sample packing (<see cref="Data.Sft.SamplePacking"/>): a batch row holds several examples.</summary>
    public bool Packing { get; init; }
    public ScalarType Dtype { get; init; } = ScalarType.BFloat16;
    public ComputeDevice Device { get; init; } = ComputeDevice.Cpu;
    public int VarFreezeStep { get; init; } = 100000;
    public int VarUpdateScaler { get; init; } = 16;
    public int LocalStepScaler { get; init; } = 32678;
    public int LocalStepClipper { get; init; } = 16;
    /// <summary>Differentially private training of the adapter (DP-SGD, <see cref="Privacy.PrivateTrainingStep"/>).</summary>
    public bool Dp { get; init; }
    public Privacy.Sampling.DpSampling DpSampling { get; init; } = Privacy.Sampling.DpSampling.Poisson;
    public double DpMaxGradNorm { get; init; } = 1.0;
    public double? DpNoiseMultiplier { get; init; }
    public double? DpTargetEpsilon { get; init; }
    /// <summary>null: 1/N, N the number of privacy units.</summary>
    public double? DpDelta { get; init; }
    public double? DpMaxEpsilon { get; init; }
    public Privacy.DpUnit DpUnit { get; init; } = Privacy.DpUnit.Example;
    public Privacy.Accounting.AccountantKind DpAccountant { get; init; } = Privacy.Accounting.AccountantKind.Prv;
    /// <summary>The YAML file the values came from (recorded in the run's lineage; not a key of its own).</summary>
    public string? ConfigFile { get; init; }

    /// <summary>The training sources (<see cref="Data"/> holds one per line).</summary>
    public IReadOnlyList<DataSource> DataSources => DataSource.ParseAll(Data, "data");

    /// <summary>Builds a config from key/value pairs (YAML then flags), validating every key and value.</summary>
    public static TrainConfig FromValues(IReadOnlyDictionary<string, string> values, string source)
    {
        var c = new TrainConfig();
        foreach (var (rawKey, value) in values)
        {
            var key = TrainKeys.Find(rawKey)
                ?? throw new UserInputException($"{source}: unknown key '{rawKey}'; valid keys: {string.Join(", ", TrainKeys.Names)}");
            c = key.Set(c, value, source);
        }
        c.Validate(source);
        return c;
    }

    public void Validate(string source)
    {
        void Fail(string key, object value, string expected) => throw TrainKey.Invalid(source, key, value, expected);
        if (string.IsNullOrWhiteSpace(Model)) Fail("model", "(missing)", "a model folder or .gguf file");
        if (string.IsNullOrWhiteSpace(Data)) Fail("data", "(missing)", "a JSONL file with context/target fields");
        // The presets in configs/ leave model and data as <PLACEHOLDER>s for the user to fill in with flags.
        if (IsPlaceholder(Model)) throw UserInputException.About($"{source}: model = {Model} is a placeholder; pass {new ConfigField("model")} PATH (an HF folder or .gguf)");
        if (IsPlaceholder(Data)) throw UserInputException.About($"{source}: data = {Data} is a placeholder; pass {new ConfigField("data")} FILE.jsonl");
        DataSource.ParseAll(Data, source);
        foreach (var key in TrainKeys.All) key.Check(this, source);
        if (Epochs < 1 && MaxSteps <= 0) Fail("epochs", Epochs, "at least 1 (or set max_steps)");
        if (Momentum != 0 && Optimizer != OptimizerKind.Sgd)
            Fail("momentum", Momentum, $"0 with optimizer {OptimizerKinds.Spellings.Name(Optimizer)} (only sgd uses momentum): set optimizer sgd or drop momentum");
        if (EvalSplit > 0 && EvalData != null) Fail("eval_split", EvalSplit, "0 when eval_data is given (one source of held-out data)");
        if (MetricForBest != "eval_loss" && EvalSamples == 0) Fail("metric_for_best", MetricForBest, "eval_loss, or set eval_samples > 0 to score accuracy/f1");
        bool evaluates = EvalData != null || EvalSplit > 0;
        if ((SaveBest || EarlyStoppingPatience > 0 || EvalEvery > 0) && !evaluates)
            Fail(SaveBest ? "save_best" : EarlyStoppingPatience > 0 ? "early_stopping_patience" : "eval_every", "set", "eval_data or eval_split to evaluate on");
        FinQLoRA.Data.Formats.DataFormats.Parse(DataFormat, source);
        if (ChatTemplate != "auto") FinQLoRA.Data.Chat.ChatTemplate.Parse(ChatTemplate, source);
        if (EvalTask != null) FinQLoRA.Data.Tasks.TaskRegistry.Get(EvalTask);
        if (LoraAFrozen && UseDora) throw LoraConfig.FrozenAWithDora(source);
        Privacy.DpConfigCheck.Validate(this, source);
    }

    /// <summary>The adapter this run trains (its A matrices seeded by <see cref="Seed"/>).</summary>
    public LoraConfig ToLoraConfig() => new()
    {
        Rank = Rank, Alpha = Alpha, Dropout = Dropout, TargetModules = Targets,
        UseRsLora = UseRslora, UseDora = UseDora, BaseModelNameOrPath = Model, InitSeed = Seed, FreezeA = LoraAFrozen,
    };

    /// <summary>Every key as run.json records it (the spellings the keys take), then the config file and the sources.</summary>
    public JsonObject ToJson()
    {
        var o = new JsonObject();
        foreach (var key in TrainKeys.All) o[key.Name] = key.Write(this);
        o["config_file"] = ConfigFile;
        o["data_sources"] = System.Text.Json.JsonSerializer.SerializeToNode(DataSources);
        return o;
    }

    private static bool IsPlaceholder(string value) => value.Length > 2 && value[0] == '<' && value[^1] == '>';
}
