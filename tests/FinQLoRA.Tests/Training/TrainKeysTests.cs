using FinQLoRA.Cli;
using FinQLoRA.Adapters;
using FinQLoRA.Cli.Commands;
using FinQLoRA.Models;
using FinQLoRA.Quantization;
using FinQLoRA.Runtime;
using FinQLoRA.Training;
using FinQLoRA.Training.Optimizers;
using FinQLoRA.Training.Schedules;
using Spectre.Console.Cli;
using System.Reflection;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Training;

/// <summary>The train keys are declared once (TrainKeys): YAML keys, flags, validation and run.json come from that table.</summary>
public sealed class TrainKeysTests
{
    private static Dictionary<string, string> Values(params (string, string)[] extra)
    {
        var v = new Dictionary<string, string> { ["model"] = "m", ["data"] = "d.jsonl" };
        foreach (var (k, x) in extra) v[k] = x;
        return v;
    }

    [Fact]
    public void EveryKeyWithAFlagHasItsOptionAndEveryOptionIsAKey()
    {
        var options = typeof(TrainSettings).GetProperties()
            .Select(p => p.GetCustomAttribute<CommandOptionAttribute>()).OfType<CommandOptionAttribute>()
            .Select(o => "--" + o.LongNames.Single()).ToHashSet();
        var keyFlags = TrainKeys.All.Where(k => k.HasFlag).Select(k => FlagNames.For(k.Name)).ToHashSet();
        Assert.Empty(keyFlags.Except(options));                            // a key without its flag
        Assert.Empty(options.Except(keyFlags).Except(TrainSettings.OwnFlags)); // a flag without its key
        Assert.Equal(keyFlags.Count, TrainSettings.KeyOptions.Count);
    }

    [Fact]
    public void KeysAreSnakeCaseAndUnique()
    {
        Assert.Equal(TrainKeys.All.Count, TrainKeys.Names.Distinct().Count());
        Assert.All(TrainKeys.Names, n => Assert.Matches("^[a-z][a-z0-9_]*$", n));
        Assert.Same(TrainKeys.Find("max_seq_len"), TrainKeys.Find("max-seq-len"));
        Assert.Null(TrainKeys.Find("lora_rank"));
    }

    [Fact]
    public void FlagsAreReadIntoTheirKeys()
    {
        var settings = new TrainSettings { Model = "m", Data = ["d.jsonl"], MaxSeqLen = "64", Resume = true, Targets = "all" };
        var values = settings.Values();
        Assert.Equal(("m", "d.jsonl", "64", "true", "all"), (values["model"], values["data"], values["max_seq_len"], values["resume"], values["targets"]));
        Assert.False(values.ContainsKey("save_best")); // a switch that was not given
    }

    [Fact]
    public void TypedValuesParseFromTheirSpellings()
    {
        var c = TrainConfig.FromValues(Values(("quant", "FP4"), ("targets", "all"), ("optimizer", "zero-one-adam"), ("lr_schedule", "linear"),
            ("dtype", "bfloat16"), ("device", "cuda:1"), ("double_quant", "no")), "flags");
        Assert.Equal(FourBitType.Fp4, c.Quant);
        Assert.Equal([LoraTargets.AllLinear], c.Targets); // resolved against the model's family when the run opens it
        Assert.Equal(OptimizerKind.ZeroOneAdam, c.Optimizer);
        Assert.Equal(LrScheduleKind.Linear, c.LrSchedule);
        Assert.Equal(ScalarType.BFloat16, c.Dtype);
        Assert.Equal(new ComputeDevice(TorchSharp.DeviceType.CUDA, 1), c.Device);
        Assert.False(c.DoubleQuant);
    }

    [Fact]
    public void DefaultsAreThePapers()
    {
        var c = TrainConfig.FromValues(Values(), "flags");
        Assert.Equal(["q_proj", "k_proj", "v_proj"], c.Targets);
        Assert.Equal((4, FourBitType.Nf4, OptimizerKind.AdamW, LrScheduleKind.Cosine, ScalarType.BFloat16, "cpu"),
            (c.Bits.Value, c.Quant, c.Optimizer, c.LrSchedule, c.Dtype, c.Device.ToString()));
    }

    [Fact]
    public void RunJsonWritesTheSpellingsTheKeysTake()
    {
        var json = TrainConfig.FromValues(Values(("quant", "fp4"), ("dtype", "f32"), ("device", "cuda"), ("optimizer", "zero-one-adam")), "flags").ToJson();
        Assert.Equal("fp4", json["quant"]!.GetValue<string>());
        Assert.Equal("q_proj,k_proj,v_proj", json["targets"]!.GetValue<string>());
        Assert.Equal("zero-one-adam", json["optimizer"]!.GetValue<string>());
        Assert.Equal("cosine", json["lr_schedule"]!.GetValue<string>());
        Assert.Equal("f32", json["dtype"]!.GetValue<string>());
        Assert.Equal("cuda", json["device"]!.GetValue<string>());
        Assert.Equal(4, json["bits"]!.GetValue<int>());
        Assert.True(json["double_quant"]!.GetValue<bool>());
        Assert.Equal([.. TrainKeys.Names, "config_file", "data_sources"], json.Select(p => p.Key));
    }

    [Fact]
    public void EveryWrittenValueReadsBackToTheSameConfig()
    {
        var c = TrainConfig.FromValues(Values(("quant", "fp4"), ("targets", "q_proj,o_proj"), ("dtype", "fp16"), ("device", "cuda:0"),
            ("lr_schedule", "constant"), ("eval_data", "e.jsonl"), ("eval_task", "fpb"), ("seed", "7")), "flags");
        var json = c.ToJson();
        var again = TrainConfig.FromValues(TrainKeys.All.Where(k => json[k.Name] != null)
            .ToDictionary(k => k.Name, k => json[k.Name]!.ToString()), "run.json");
        Assert.Equal(json.ToJsonString(), again.ToJson().ToJsonString());
    }

    [Theory]
    [InlineData("dtype", "int8", "dtype = int8 is invalid; expected bf16, f32 or f16")]
    [InlineData("device", "gpu", "device = gpu is invalid; expected cpu, cuda or cuda:N")]
    [InlineData("lr_schedule", "step", "lr_schedule = step is invalid; expected cosine, linear or constant")]
    [InlineData("optimizer", "Lion", "optimizer = lion is invalid; expected adamw, sgd or zero-one-adam")]
    [InlineData("momentum", "1", "momentum = 1 is invalid; expected a number in [0, 1)")]
    [InlineData("momentum", "0.5", "momentum = 0.5 is invalid; expected 0 with optimizer adamw (only sgd uses momentum)")]
    [InlineData("targets", "attn", "flags: targets: unknown target module(s) 'attn'")]
    [InlineData("seed", "x", "seed = 'x' is not an integer")]
    [InlineData("rank", "0", "rank = 0 is invalid; expected a positive integer")]
    public void BadValuesNameTheKey(string key, string value, string expected)
    {
        var e = Assert.Throws<UserInputException>(() => TrainConfig.FromValues(Values((key, value)), "flags"));
        Assert.Contains(expected, e.Message);
        Assert.StartsWith("flags: ", e.Message);
    }
}
