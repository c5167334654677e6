using FinQLoRA.Adapters;
using FinQLoRA.Models;
using FinQLoRA.Options;
using FinQLoRA.Quantization;
using FinQLoRA.Runtime;
using FinQLoRA.Training.Optimizers;
using FinQLoRA.Training.Schedules;
using static FinQLoRA.Training.TrainKey;

namespace FinQLoRA.Training;

/// <summary>
/// The one declaration of the train config's keys, in <see cref="TrainConfig"/>'s order: YAML parsing, the flags
/// (<c>--kebab-case</c> of each name), per-key validation, the listing of valid keys and run.json all come from it.
/// </summary>
public static class TrainKeys
{
    private static (Func<T, bool>, string) Is<T>(Func<T, bool> valid, string expected) => (valid, expected);
    private static readonly (Func<double, bool>, string) Finite = Is<double>(double.IsFinite, "a finite number");

    private static readonly ValueKind<IReadOnlyList<string>> Targets = new(
        (text, source, key) => LoraTargets.Parse(text, $"{source}: {key}"), v => string.Join(",", v));

    private static readonly ValueKind<ComputeDevice> Device = Kind<ComputeDevice>(ComputeDevice.TryParse,
        t => $"{t} is invalid; expected {ComputeDevice.Expected}", v => v.ToString());

    private static readonly ValueKind<Privacy.DpUnit> DpUnitKind = Kind<Privacy.DpUnit>(Privacy.DpUnit.TryParse,
        t => $"{t} is invalid; expected example or field:NAME", v => v.ToString());

    public static IReadOnlyList<TrainKey> All { get; } =
    [
        Of("model", "base model: HF folder or .gguf", Text, c => c.Model, (c, v) => c with { Model = v }),
        Of("data", "training data (JSONL or .parquet); several as NAME=FILE[:WEIGHT] (a repeated flag) train one adapter on a task family", Text, c => c.Data, (c, v) => c with { Data = v }),
        Of("eval_data", "held-out JSONL evaluated during (eval_every) and after training", OptionalText, c => c.EvalData, (c, v) => c with { EvalData = v }),
        Of("eval_split", "share of the training data held out for evaluation (seeded; 0 = none), e.g. 0.05", Number, c => c.EvalSplit, (c, v) => c with { EvalSplit = v },
            Is<double>(v => v >= 0 && v < 1, "a share in [0, 1)")),
        Of("data_format", "auto (from the fields), context-target, alpaca or chat", LowerText, c => c.DataFormat, (c, v) => c with { DataFormat = v }),
        Of("chat_template", "how chat data is rendered: auto (the model's tokenizer_config.json), " + FinQLoRA.Data.Chat.ChatTemplate.Names, LowerText, c => c.ChatTemplate, (c, v) => c with { ChatTemplate = v }),
        Of("eval_every", "evaluate every N optimizer steps (0 = only at the end)", Integer, c => c.EvalEvery, (c, v) => c with { EvalEvery = v },
            Is<int>(v => v >= 0, "0 (only at the end) or more")),
        Of("eval_samples", "held-out examples scored by greedy generation with the task metric (0 = loss only)", Integer, c => c.EvalSamples, (c, v) => c with { EvalSamples = v },
            Is<int>(v => v >= 0, "0 or more")),
        Of("eval_task", "task whose scorer rates the generated answers (fpb, tfns, ...; default: exact match)", OptionalLowerText, c => c.EvalTask, (c, v) => c with { EvalTask = v }),
        Of("metric_for_best", "eval_loss (lower is better), accuracy or f1 (higher is better)", LowerText, c => c.MetricForBest, (c, v) => c with { MetricForBest = v },
            Is<string>(v => v is "eval_loss" or "accuracy" or "f1", "eval_loss, accuracy or f1")),
        Of("save_best", "keep the adapter of the best evaluation in best/", TrueFalse, c => c.SaveBest, (c, v) => c with { SaveBest = v }),
        Of("early_stopping_patience", "stop after N evaluations without improvement (0 = off)", Integer, c => c.EarlyStoppingPatience, (c, v) => c with { EarlyStoppingPatience = v },
            Is<int>(v => v >= 0, "0 (off) or more")),
        Of("report_to", "none or tensorboard (event files in out/runs)", LowerText, c => c.ReportTo, (c, v) => c with { ReportTo = v },
            Is<string>(v => v is "none" or "tensorboard", "none or tensorboard")),
        Of("out", "output folder (checkpoints, adapter, metrics.jsonl, run.json, loss.png)", Text, c => c.Out, (c, v) => c with { Out = v }),
        Of("bits", "4, 8 or 16 (frozen base precision)", Width, c => c.Bits, (c, v) => c with { Bits = v }),
        Of("quant", "nf4 or fp4 (with bits 4)", Named(FourBitTypes.Spellings), c => c.Quant, (c, v) => c with { Quant = v }),
        Of("double_quant", "double quantization of the 4-bit constants (true/false)", TrueFalse, c => c.DoubleQuant, (c, v) => c with { DoubleQuant = v }),
        Of("rank", "LoRA rank r", Integer, c => c.Rank, (c, v) => c with { Rank = v }, Is<int>(v => v >= 1, "a positive integer")),
        Of("alpha", "LoRA alpha", Number, c => c.Alpha, (c, v) => c with { Alpha = v }, Finite, Is<double>(v => v > 0, "a positive number")),
        Of("dropout", "LoRA dropout", Number, c => c.Dropout, (c, v) => c with { Dropout = v }, Finite, Is<double>(v => v is >= 0 and < 1, "a number in [0, 1)")),
        Of("targets", "q_proj,k_proj,v_proj (default), all-linear (all), or any list of the model's projections (Phi-3: qkv_proj, o_proj, gate_up_proj, down_proj)", Targets, c => c.Targets, (c, v) => c with { Targets = v }),
        Of("use_rslora", "rsLoRA: alpha/sqrt(r) scaling (true/false)", TrueFalse, c => c.UseRslora, (c, v) => c with { UseRslora = v }),
        Of("use_dora", "DoRA: weight-decomposed LoRA (true/false)", TrueFalse, c => c.UseDora, (c, v) => c with { UseDora = v }),
        Of("lora_a_frozen", "FFA-LoRA: A stays at its seeded init and only B trains, so adapters of one seed average exactly (true/false; not with use_dora)", TrueFalse, c => c.LoraAFrozen, (c, v) => c with { LoraAFrozen = v }),
        Of("adapter_dtype", "dtype of the saved adapter (adapter/, best/): fp32 (PEFT's default for every base dtype), bf16 or fp16 (half the file); checkpoints stay fp32 for an exact resume",
            Named(AdapterDtypes.Spellings), c => c.SavedAdapterDtype, (c, v) => c with { AdapterDtype = v }),
        Of("lr", "peak learning rate", Number, c => c.Lr, (c, v) => c with { Lr = v }, Finite, Is<double>(v => v > 0, "a positive number")),
        Of("epochs", "passes over the training data", Integer, c => c.Epochs, (c, v) => c with { Epochs = v }),
        Of("max_steps", "optimizer steps (overrides epochs when > 0)", Integer, c => c.MaxSteps, (c, v) => c with { MaxSteps = v },
            Is<int>(v => v != 0, "a positive number of steps (or -1 to train for epochs)")),
        Of("batch_size", "examples per micro-batch (per rank)", Integer, c => c.BatchSize, (c, v) => c with { BatchSize = v }, Is<int>(v => v >= 1, "at least 1")),
        Of("grad_accum", "micro-batches per optimizer step", Integer, c => c.GradAccum, (c, v) => c with { GradAccum = v }, Is<int>(v => v >= 1, "at least 1")),
        Of("max_seq_len", "longest sequence; prompts are cut from the left", Integer, c => c.MaxSeqLen, (c, v) => c with { MaxSeqLen = v }, Is<int>(v => v >= 8, "at least 8")),
        Of("optimizer", OptimizerKinds.Spellings.Expected, Named(OptimizerKinds.Spellings), c => c.Optimizer, (c, v) => c with { Optimizer = v }),
        Of("weight_decay", "weight decay wd: adamw and zero-one-adam shrink the weights directly (decoupled, p -= lr*wd*p); sgd adds wd*p to the gradient (L2, as torch.optim.SGD)", Number, c => c.WeightDecay, (c, v) => c with { WeightDecay = v }, Finite),
        Of("momentum", "sgd only: momentum factor in [0, 1) (0 = plain SGD; dampening 0, no Nesterov)", Number, c => c.Momentum, (c, v) => c with { Momentum = v },
            Finite, Is<double>(v => v is >= 0 and < 1, "a number in [0, 1)")),
        Of("lr_schedule", "cosine, linear or constant (after warmup)", Named(LrScheduleKinds.Spellings), c => c.LrSchedule, (c, v) => c with { LrSchedule = v }),
        Of("warmup_steps", "linear warmup steps", Integer, c => c.WarmupSteps, (c, v) => c with { WarmupSteps = v }, Is<int>(v => v >= 0, "0 or more")),
        Of("max_grad_norm", "gradient clipping (0 = off)", Number, c => c.MaxGradNorm, (c, v) => c with { MaxGradNorm = v }, Finite, Is<double>(v => v >= 0, "0 (off) or more")),
        Of("save_every", "checkpoint every N steps (0 = only at the end)", Integer, c => c.SaveEvery, (c, v) => c with { SaveEvery = v }, Is<int>(v => v >= 0, "0 or more")),
        Of("keep_checkpoints", "how many checkpoints to keep", Integer, c => c.KeepCheckpoints, (c, v) => c with { KeepCheckpoints = v }, Is<int>(v => v >= 1, "at least 1")),
        Of("log_every", "log every N steps", Integer, c => c.LogEvery, (c, v) => c with { LogEvery = v }, Is<int>(v => v >= 1, "at least 1")),
        Of("seed", "seed (data order, init, dropout)", Integer64, c => c.Seed, (c, v) => c with { Seed = v }),
        Of("resume", "continue from the latest checkpoint in out", TrueFalse, c => c.Resume, (c, v) => c with { Resume = v }),
        Of("grad_checkpointing", "recompute each decoder layer in backward", TrueFalse, c => c.GradCheckpointing, (c, v) => c with { GradCheckpointing = v }),
        Of("group_by_length", "batch similar lengths together", TrueFalse, c => c.GroupByLength, (c, v) => c with { GroupByLength = v }).YamlOnly(),
        Of("packing", "bin-pack short examples into max_seq_len rows (per-example positions; attention stays inside each example)", TrueFalse, c => c.Packing, (c, v) => c with { Packing = v }),
        Of("dtype", "bf16, f32 or f16 compute", Named(ComputeDtypes.Spellings), c => c.Dtype, (c, v) => c with { Dtype = v }),
        Of("device", "cpu, cuda or cuda:N (under mpirun: cuda:<local rank>)", Device, c => c.Device, (c, v) => c with { Device = v }),
        Of("var_freeze_step", "0/1 Adam: freeze variance after this step", Integer, c => c.VarFreezeStep, (c, v) => c with { VarFreezeStep = v }),
        Of("var_update_scaler", "0/1 Adam: variance updates per interval doubling", Integer, c => c.VarUpdateScaler, (c, v) => c with { VarUpdateScaler = v }),
        Of("local_step_scaler", "0/1 Adam: steps per local-interval doubling", Integer, c => c.LocalStepScaler, (c, v) => c with { LocalStepScaler = v }),
        Of("local_step_clipper", "0/1 Adam: longest local-step interval", Integer, c => c.LocalStepClipper, (c, v) => c with { LocalStepClipper = v }),
        Of("dp", "differentially private training (DP-SGD on the adapter: per-unit clipping, Gaussian noise, an accountant)", TrueFalse, c => c.Dp, (c, v) => c with { Dp = v }),
        Of("dp_sampling", "poisson (each unit joins a step with probability q, as the accountant assumes) or shuffle (fixed-size batches; the guarantee is then approximate)", Named(Privacy.Sampling.DpSamplings.Spellings), c => c.DpSampling, (c, v) => c with { DpSampling = v }),
        Of("dp_max_grad_norm", "DP: clip each unit's gradient (all adapter parameters jointly) to this L2 norm C", Number, c => c.DpMaxGradNorm, (c, v) => c with { DpMaxGradNorm = v },
            Finite, Is<double>(v => v > 0, "a positive number")),
        Of("dp_noise_multiplier", "DP: noise standard deviation / C (sigma); the epsilon it spends is reported (or give dp_target_epsilon)", OptionalNumber, c => c.DpNoiseMultiplier, (c, v) => c with { DpNoiseMultiplier = v },
            Is<double?>(v => v is null || (double.IsFinite(v.Value) && v > 0), "a positive number")),
        Of("dp_target_epsilon", "DP: solve sigma so that the planned steps spend this epsilon", OptionalNumber, c => c.DpTargetEpsilon, (c, v) => c with { DpTargetEpsilon = v },
            Is<double?>(v => v is null || (double.IsFinite(v.Value) && v > 0), "a positive number")),
        Of("dp_delta", "DP: delta of the (epsilon, delta) guarantee (default 1/N, N the number of units)", OptionalNumber, c => c.DpDelta, (c, v) => c with { DpDelta = v },
            Is<double?>(v => v is null || v is > 0 and < 1, "a number in (0, 1)")),
        Of("dp_max_epsilon", "DP: stop before a step that would spend more than this epsilon", OptionalNumber, c => c.DpMaxEpsilon, (c, v) => c with { DpMaxEpsilon = v },
            Is<double?>(v => v is null || (double.IsFinite(v.Value) && v > 0), "a positive number")),
        Of("dp_unit", "DP: what is protected: example, or field:NAME (all examples sharing the field's value, e.g. a customer id, are one unit)", DpUnitKind, c => c.DpUnit, (c, v) => c with { DpUnit = v }),
        Of("dp_accountant", "DP: prv (tightest) or rdp", Named(Privacy.Accounting.AccountantKinds.Spellings), c => c.DpAccountant, (c, v) => c with { DpAccountant = v }),
    ];

    private static readonly Dictionary<string, TrainKey> ByName = All.ToDictionary(k => k.Name);

    /// <summary>The key <paramref name="name"/> names (snake_case, or the flag's kebab-case); null if none.</summary>
    public static TrainKey? Find(string name) => ByName.GetValueOrDefault(SnakeCase.FromKebab(name));

    public static IEnumerable<string> Names => All.Select(k => k.Name);
}
