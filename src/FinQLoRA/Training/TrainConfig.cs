using System.Globalization;
using System.Text.Json.Nodes;
using YamlDotNet.RepresentationModel;

namespace FinQLoRA.Training;

/// <summary>
/// Every setting of a fine-tuning run. The same snake_case keys come from a YAML file (<c>--config</c>) and from
/// flags (<c>--kebab-case</c>, which win). Unknown keys and bad values are rejected with the key named.
/// Defaults are the FinLoRA paper's (lr 1e-4, alpha 32, dropout 0.1, rank 4 at 4-bit).
/// </summary>
public sealed record TrainConfig
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
    public int Bits { get; init; } = 4;
    public string Quant { get; init; } = "nf4";
    public bool DoubleQuant { get; init; } = true;
    public int Rank { get; init; } = 4;
    public double Alpha { get; init; } = 32;
    public double Dropout { get; init; } = 0.1;
    public string Targets { get; init; } = "q_proj,k_proj,v_proj";
    public bool UseRslora { get; init; }
    public bool UseDora { get; init; }
    public double Lr { get; init; } = 1e-4;
    public int Epochs { get; init; } = 4;
    public int MaxSteps { get; init; } = -1;
    public int BatchSize { get; init; } = 16;
    public int GradAccum { get; init; } = 1;
    public int MaxSeqLen { get; init; } = 512;
    public string Optimizer { get; init; } = "adamw";
    public double WeightDecay { get; init; }
    public string LrSchedule { get; init; } = "cosine";
    public int WarmupSteps { get; init; } = 10;
    public double MaxGradNorm { get; init; } = 1.0;
    public int SaveEvery { get; init; } = 100;
    public int KeepCheckpoints { get; init; } = 2;
    public int LogEvery { get; init; } = 1;
    public long Seed { get; init; } = 42;
    public bool Resume { get; init; }
    public bool GradCheckpointing { get; init; }
    public bool GroupByLength { get; init; } = true;
    public string Dtype { get; init; } = "bf16";
    public string Device { get; init; } = "cpu";
    public int VarFreezeStep { get; init; } = 100000;
    public int VarUpdateScaler { get; init; } = 16;
    public int LocalStepScaler { get; init; } = 32678;
    public int LocalStepClipper { get; init; } = 16;
    /// <summary>The YAML file the values came from (recorded in the run's lineage; not a key of its own).</summary>
    public string? ConfigFile { get; init; }

    /// <summary>The training sources (<see cref="Data"/> holds one per line).</summary>
    public IReadOnlyList<DataSource> DataSources => DataSource.ParseAll(Data, "data");

    /// <summary>Every key, with a short description (used for the error listing valid keys and for --help).</summary>
    public static readonly IReadOnlyDictionary<string, string> Keys = new Dictionary<string, string>
    {
        ["model"] = "base model: HF folder or .gguf", ["data"] = "training JSONL (context/target)",
        ["eval_data"] = "held-out JSONL evaluated during and after training", ["out"] = "output folder",
        ["data_format"] = "auto (from the fields), context-target, alpaca or chat",
        ["chat_template"] = "auto (tokenizer_config.json's), llama3, chatml or none: how chat data is rendered",
        ["eval_split"] = "share of the training data held out for evaluation (seeded; 0 = none)",
        ["eval_every"] = "evaluate every N optimizer steps (0 = only at the end)",
        ["eval_samples"] = "held-out examples scored by greedy generation with the task metric (0 = loss only)",
        ["eval_task"] = "task whose scorer rates the generated answers (fpb, tfns, ...; default: exact match)",
        ["metric_for_best"] = "eval_loss (lower is better), accuracy or f1 (higher is better)",
        ["save_best"] = "keep the adapter of the best evaluation in best/",
        ["early_stopping_patience"] = "stop after N evaluations without improvement (0 = off)",
        ["report_to"] = "none or tensorboard (event files in out/runs)",
        ["bits"] = "4, 8 or 16 (frozen base precision)", ["quant"] = "nf4 or fp4 (4-bit)", ["double_quant"] = "true/false",
        ["rank"] = "LoRA rank r", ["alpha"] = "LoRA alpha", ["dropout"] = "LoRA dropout", ["targets"] = "q_proj,k_proj,v_proj | all | list",
        ["use_rslora"] = "alpha/sqrt(r) scaling", ["use_dora"] = "weight-decomposed LoRA",
        ["lr"] = "peak learning rate", ["epochs"] = "epochs", ["max_steps"] = "optimizer steps (overrides epochs when > 0)",
        ["batch_size"] = "examples per micro-batch (per rank)", ["grad_accum"] = "micro-batches per optimizer step",
        ["max_seq_len"] = "longest sequence; prompts are cut from the left", ["optimizer"] = "adamw or zero-one-adam",
        ["weight_decay"] = "decoupled weight decay", ["lr_schedule"] = "cosine, linear or constant", ["warmup_steps"] = "linear warmup steps",
        ["max_grad_norm"] = "gradient clipping (0 = off)", ["save_every"] = "checkpoint every N steps (0 = only at the end)",
        ["keep_checkpoints"] = "how many checkpoints to keep", ["log_every"] = "log every N steps", ["seed"] = "seed (data order, init, dropout)",
        ["resume"] = "continue from the latest checkpoint in out", ["grad_checkpointing"] = "recompute layers in backward",
        ["group_by_length"] = "batch similar lengths together", ["dtype"] = "bf16, f32 or f16 compute", ["device"] = "cpu, cuda or cuda:N",
        ["var_freeze_step"] = "0/1 Adam: freeze variance after this step", ["var_update_scaler"] = "0/1 Adam: variance updates per interval doubling",
        ["local_step_scaler"] = "0/1 Adam: steps per local-interval doubling", ["local_step_clipper"] = "0/1 Adam: longest local-step interval",
    };

    /// <summary>Reads a YAML run config (a flat mapping of the keys above).</summary>
    public static Dictionary<string, string> ReadYaml(string path)
    {
        if (!File.Exists(path)) throw new UserInputException($"{path}: config file not found");
        var yaml = new YamlStream();
        try { using var reader = new StreamReader(path); yaml.Load(reader); }
        catch (YamlDotNet.Core.YamlException e) { throw new UserInputException($"{path}: not valid YAML (line {e.Start.Line}: {e.Message})"); }
        var values = new Dictionary<string, string>();
        if (yaml.Documents.Count == 0) return values;
        if (yaml.Documents[0].RootNode is not YamlMappingNode map)
            throw new UserInputException($"{path}: expected a mapping of keys to values at the top level");
        foreach (var (k, v) in map.Children)
        {
            string key = ((YamlScalarNode)k).Value ?? "";
            // data may list several sources (a task family): one per line internally
            if (key == "data" && v is YamlSequenceNode list && list.Children.All(c => c is YamlScalarNode))
            {
                values[key] = string.Join(DataSource.Separator, list.Children.Select(c => ((YamlScalarNode)c).Value ?? ""));
                continue;
            }
            if (v is not YamlScalarNode scalar)
                throw new UserInputException($"{path}: key '{key}' must have a single value");
            values[key] = scalar.Value ?? "";
        }
        return values;
    }

    /// <summary>Builds a config from key/value pairs (YAML then flags), validating every key and value.</summary>
    public static TrainConfig FromValues(IReadOnlyDictionary<string, string> values, string source)
    {
        var c = new TrainConfig();
        foreach (var (rawKey, value) in values)
        {
            string key = rawKey.Replace('-', '_');
            if (!Keys.ContainsKey(key))
                throw new UserInputException($"{source}: unknown key '{rawKey}'; valid keys: {string.Join(", ", Keys.Keys)}");
            c = key switch
            {
                "model" => c with { Model = value }, "data" => c with { Data = value },
                "eval_data" => c with { EvalData = value }, "out" => c with { Out = value },
                "data_format" => c with { DataFormat = value.ToLowerInvariant() }, "chat_template" => c with { ChatTemplate = value.ToLowerInvariant() },
                "eval_split" => c with { EvalSplit = Double(key, value, source) }, "eval_every" => c with { EvalEvery = Int(key, value, source) },
                "eval_samples" => c with { EvalSamples = Int(key, value, source) }, "eval_task" => c with { EvalTask = value.ToLowerInvariant() },
                "metric_for_best" => c with { MetricForBest = value.ToLowerInvariant() }, "save_best" => c with { SaveBest = Bool(key, value, source) },
                "early_stopping_patience" => c with { EarlyStoppingPatience = Int(key, value, source) },
                "report_to" => c with { ReportTo = value.ToLowerInvariant() },
                "bits" => c with { Bits = Int(key, value, source) }, "quant" => c with { Quant = value.ToLowerInvariant() },
                "double_quant" => c with { DoubleQuant = Bool(key, value, source) },
                "rank" => c with { Rank = Int(key, value, source) }, "alpha" => c with { Alpha = Double(key, value, source) },
                "dropout" => c with { Dropout = Double(key, value, source) }, "targets" => c with { Targets = value },
                "use_rslora" => c with { UseRslora = Bool(key, value, source) }, "use_dora" => c with { UseDora = Bool(key, value, source) },
                "lr" => c with { Lr = Double(key, value, source) }, "epochs" => c with { Epochs = Int(key, value, source) },
                "max_steps" => c with { MaxSteps = Int(key, value, source) }, "batch_size" => c with { BatchSize = Int(key, value, source) },
                "grad_accum" => c with { GradAccum = Int(key, value, source) }, "max_seq_len" => c with { MaxSeqLen = Int(key, value, source) },
                "optimizer" => c with { Optimizer = value.ToLowerInvariant() }, "weight_decay" => c with { WeightDecay = Double(key, value, source) },
                "lr_schedule" => c with { LrSchedule = value.ToLowerInvariant() }, "warmup_steps" => c with { WarmupSteps = Int(key, value, source) },
                "max_grad_norm" => c with { MaxGradNorm = Double(key, value, source) }, "save_every" => c with { SaveEvery = Int(key, value, source) },
                "keep_checkpoints" => c with { KeepCheckpoints = Int(key, value, source) }, "log_every" => c with { LogEvery = Int(key, value, source) },
                "seed" => c with { Seed = Int(key, value, source) }, "resume" => c with { Resume = Bool(key, value, source) },
                "grad_checkpointing" => c with { GradCheckpointing = Bool(key, value, source) },
                "group_by_length" => c with { GroupByLength = Bool(key, value, source) },
                "dtype" => c with { Dtype = value.ToLowerInvariant() }, "device" => c with { Device = value },
                "var_freeze_step" => c with { VarFreezeStep = Int(key, value, source) },
                "var_update_scaler" => c with { VarUpdateScaler = Int(key, value, source) },
                "local_step_scaler" => c with { LocalStepScaler = Int(key, value, source) },
                "local_step_clipper" => c with { LocalStepClipper = Int(key, value, source) },
                _ => throw new InvalidOperationException(key),
            };
        }
        c.Validate(source);
        return c;
    }

    public void Validate(string source)
    {
        void Fail(string key, object value, string expected) =>
            throw new UserInputException($"{source}: {key} = {value} is invalid; expected {expected}");
        if (string.IsNullOrWhiteSpace(Model)) Fail("model", "(missing)", "a model folder or .gguf file");
        if (string.IsNullOrWhiteSpace(Data)) Fail("data", "(missing)", "a JSONL file with context/target fields");
        // The presets in configs/ leave model and data as <PLACEHOLDER>s for the user to fill in with flags.
        if (IsPlaceholder(Model)) throw new UserInputException($"{source}: model = {Model} is a placeholder; pass --model PATH (an HF folder or .gguf)");
        if (IsPlaceholder(Data)) throw new UserInputException($"{source}: data = {Data} is a placeholder; pass --data FILE.jsonl");
        DataSource.ParseAll(Data, source);
        foreach (var (key, value) in new[] { ("alpha", Alpha), ("dropout", Dropout), ("lr", Lr), ("weight_decay", WeightDecay), ("max_grad_norm", MaxGradNorm) })
            if (!double.IsFinite(value)) Fail(key, value, "a finite number");
        if (Bits is not (4 or 8 or 16)) Fail("bits", Bits, "4, 8 or 16");
        if (Quant is not ("nf4" or "fp4")) Fail("quant", Quant, "nf4 or fp4");
        if (Rank < 1) Fail("rank", Rank, "a positive integer");
        if (Alpha <= 0) Fail("alpha", Alpha, "a positive number");
        if (Dropout is < 0 or >= 1) Fail("dropout", Dropout, "a number in [0, 1)");
        if (Lr <= 0 || double.IsNaN(Lr)) Fail("lr", Lr, "a positive number");
        if (MaxSteps == 0) Fail("max_steps", MaxSteps, "a positive number of steps (or -1 to train for epochs)");
        if (Epochs < 1 && MaxSteps <= 0) Fail("epochs", Epochs, "at least 1 (or set max_steps)");
        if (BatchSize < 1) Fail("batch_size", BatchSize, "at least 1");
        if (GradAccum < 1) Fail("grad_accum", GradAccum, "at least 1");
        if (MaxSeqLen < 8) Fail("max_seq_len", MaxSeqLen, "at least 8");
        if (Optimizer is not ("adamw" or "zero-one-adam")) Fail("optimizer", Optimizer, "adamw or zero-one-adam");
        if (LrSchedule is not ("cosine" or "linear" or "constant")) Fail("lr_schedule", LrSchedule, "cosine, linear or constant");
        if (WarmupSteps < 0) Fail("warmup_steps", WarmupSteps, "0 or more");
        if (MaxGradNorm < 0) Fail("max_grad_norm", MaxGradNorm, "0 (off) or more");
        if (SaveEvery < 0) Fail("save_every", SaveEvery, "0 or more");
        if (KeepCheckpoints < 1) Fail("keep_checkpoints", KeepCheckpoints, "at least 1");
        if (LogEvery < 1) Fail("log_every", LogEvery, "at least 1");
        if (Dtype is not ("bf16" or "f32" or "fp32" or "f16" or "fp16")) Fail("dtype", Dtype, "bf16, f32 or f16");
        if (!(EvalSplit >= 0 && EvalSplit < 1)) Fail("eval_split", EvalSplit, "a share in [0, 1)");
        if (EvalSplit > 0 && EvalData != null) Fail("eval_split", EvalSplit, "0 when eval_data is given (one source of held-out data)");
        if (EvalEvery < 0) Fail("eval_every", EvalEvery, "0 (only at the end) or more");
        if (EvalSamples < 0) Fail("eval_samples", EvalSamples, "0 or more");
        if (MetricForBest is not ("eval_loss" or "accuracy" or "f1")) Fail("metric_for_best", MetricForBest, "eval_loss, accuracy or f1");
        if (MetricForBest != "eval_loss" && EvalSamples == 0) Fail("metric_for_best", MetricForBest, "eval_loss, or set eval_samples > 0 to score accuracy/f1");
        if (EarlyStoppingPatience < 0) Fail("early_stopping_patience", EarlyStoppingPatience, "0 (off) or more");
        bool evaluates = EvalData != null || EvalSplit > 0;
        if ((SaveBest || EarlyStoppingPatience > 0 || EvalEvery > 0) && !evaluates)
            Fail(SaveBest ? "save_best" : EarlyStoppingPatience > 0 ? "early_stopping_patience" : "eval_every", "set", "eval_data or eval_split to evaluate on");
        if (ReportTo is not ("none" or "tensorboard")) Fail("report_to", ReportTo, "none or tensorboard");
        FinQLoRA.Data.Formats.DataFormats.Parse(DataFormat, source);
        if (ChatTemplate != "auto") FinQLoRA.Data.Formats.ChatTemplate.Parse(ChatTemplate, source);
        if (EvalTask != null) FinQLoRA.Data.Tasks.TaskRegistry.Get(EvalTask);
    }

    public JsonObject ToJson()
    {
        var o = new JsonObject();
        foreach (var p in GetType().GetProperties())
        {
            string key = string.Concat(p.Name.Select((ch, i) => i > 0 && char.IsUpper(ch) ? "_" + char.ToLowerInvariant(ch) : char.ToLowerInvariant(ch).ToString()));
            o[key] = System.Text.Json.JsonSerializer.SerializeToNode(p.GetValue(this));
        }
        return o;
    }

    private static bool IsPlaceholder(string value) => value.Length > 2 && value[0] == '<' && value[^1] == '>';

    private static int Int(string key, string value, string source) =>
        int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) ? v
        : throw new UserInputException($"{source}: {key} = '{value}' is not an integer");

    private static double Double(string key, string value, string source) =>
        double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) ? v
        : throw new UserInputException($"{source}: {key} = '{value}' is not a number");

    private static bool Bool(string key, string value, string source) => value.ToLowerInvariant() switch
    {
        "true" or "yes" or "1" => true,
        "false" or "no" or "0" => false,
        _ => throw new UserInputException($"{source}: {key} = '{value}' is not true or false"),
    };
}
