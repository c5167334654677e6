using FinQLoRA.Models.Families;
using FinQLoRA.Models;
using FinQLoRA.Quantization;
using FinQLoRA.Planning;

namespace FinQLoRA.Tests.Quantization;

public sealed class MemoryPlannerTests
{
    [Theory]
    [InlineData("llama-3.1-8b", 16, 15.0)]
    [InlineData("llama-3.1-8b", 8, 8.6)]
    [InlineData("llama-3.1-8b", 4, 5.6)]
    [InlineData("llama-3.1-70b", 16, 131.5)]
    [InlineData("llama-3.1-70b", 8, 68.5)]
    [InlineData("llama-3.1-70b", 4, 37.8)]
    public void InferenceTotalsAreWithinFivePercentOfTheReferenceTable(string model, int bits, double gib)
    {
        var plan = MemoryPlanner.Inference(ModelPresets.Get(model)!, new QuantizationOptions(Bits: bits), model);
        double total = plan.TotalBytes / MemoryPlan.GiB;
        Assert.InRange(total, gib * 0.95, gib * 1.05);
    }

    [Fact]
    public void WeightComponentsMatchTheDerivedParameterCounts()
    {
        var c = ModelPresets.Get("llama-3.1-8b")!;
        var bf16 = MemoryPlanner.Weights(c, new QuantizationOptions(Bits: 16)).ToDictionary(x => x.Name, x => x.Bytes);
        // reference-algorithms.md §1: the 8B linear layers hold 6,979,321,856 parameters; embedding + head 2.10 GB
        Assert.Equal(6_979_321_856L * 2, bf16["attention"] + bf16["mlp"]);
        Assert.Equal(2 * 128256L * 4096 * 2, bf16["embeddings"] + bf16["lm_head"]);
        var nf4 = MemoryPlanner.Weights(c, QuantizationOptions.Nf4).ToDictionary(x => x.Name, x => x.Bytes);
        double linearGb = (nf4["attention"] + nf4["mlp"] + nf4["quant_constants"]) / 1e9;
        Assert.Equal(3.60, linearGb, 2); // 4.127 bits/param
        var plain = MemoryPlanner.Weights(c, QuantizationOptions.Nf4 with { DoubleQuant = false }).ToDictionary(x => x.Name, x => x.Bytes);
        Assert.Equal(3.93, (plain["attention"] + plain["mlp"] + plain["quant_constants"]) / 1e9, 2); // 4.5 bits/param
        var seventy = MemoryPlanner.Weights(ModelPresets.Get("llama-3.1-70b")!, QuantizationOptions.Nf4).ToDictionary(x => x.Name, x => x.Bytes);
        Assert.Equal(35.3, (seventy["attention"] + seventy["mlp"] + seventy["quant_constants"]) / 1e9, 1);
    }

    [Theory]
    [InlineData("llama-3.1-8b", 4, 2_359_296)]
    [InlineData("llama-3.1-8b", 8, 4_718_592)]
    [InlineData("llama-3.1-70b", 4, 11_141_120)]
    public void AdapterParameterCountsMatchFinLoRA(string model, int rank, long expected) =>
        Assert.Equal(expected, MemoryPlanner.AdapterParameters(ModelPresets.Get(model)!, new TrainingMemoryOptions(Rank: rank)));

    [Fact]
    public void TrainingPlanAddsAdaptersOptimizerAndActivationsAndCheckpointingShrinksThem()
    {
        var c = ModelPresets.Get("llama-3.1-8b")!;
        var t = new TrainingMemoryOptions(BatchSize: 2, SeqLen: 1024, Rank: 8);
        var full = MemoryPlanner.Training(c, QuantizationOptions.Nf4, t, "8b");
        var ckpt = MemoryPlanner.Training(c, QuantizationOptions.Nf4, t with { GradientCheckpointing = true }, "8b");
        var parts = full.Components.ToDictionary(x => x.Name, x => x.Bytes);
        Assert.Equal(4_718_592L * 4, parts["adapter_weights"]);
        Assert.Equal(4_718_592L * 8, parts["optimizer_state"]);
        long perToken = MemoryPlanner.LayerActivationBytesPerToken(c, t);
        Assert.Equal(32 * perToken * 2048, parts["activations"]);
        var ckptParts = ckpt.Components.ToDictionary(x => x.Name, x => x.Bytes);
        Assert.Equal(32L * 2048 * 4096 * 2 + perToken * 2048, ckptParts["activations"]);
        Assert.True(ckpt.TotalBytes < full.TotalBytes);
        Assert.Equal(full.WeightsBytes, ckpt.WeightsBytes);
        var all = MemoryPlanner.Training(c, QuantizationOptions.Nf4, t with { Targets = ModelLayout.Projections }, "8b");
        Assert.True(all.TotalBytes > full.TotalBytes);
    }

    [Fact]
    public void HeadTermCountsOnlyTargetTokensAndAtMostOneChunkOfLogits()
    {
        var c = ModelPresets.Get("llama-3.1-8b")!; // V = 128,256, h = 4,096: a chunk is 32 MiB / (128,256 · 4 B) = 65 rows
        long Head(TrainingMemoryOptions t) =>
            MemoryPlanner.Training(c, QuantizationOptions.Nf4, t, "8b").Components.Single(x => x.Name == "head_activations").Bytes;

        // classification, batch 16 × 512 with 3 target tokens: 48 rows in one chunk, each norm 8h + logits 10V:
        // 48 · (32,768 + 1,282,560) = 48 · 1,315,328
        Assert.Equal(63_135_744L, Head(new TrainingMemoryOptions(BatchSize: 16, SeqLen: 512, TargetTokensPerExample: 3)));
        // exactly one chunk (5 × 13 = 65 rows) still runs unchunked: 65 · 1,315,328
        Assert.Equal(85_496_320L, Head(new TrainingMemoryOptions(BatchSize: 5, SeqLen: 512, TargetTokensPerExample: 13)));
        // 66 rows are chunked: norm 8h and bf16 grad_x 2h per row, plus one chunk's 65 · 12 · V:
        // 66 · 32,768 + 65 · 12 · 128,256 + 66 · 8,192 = 2,162,688 + 100,039,680 + 540,672
        Assert.Equal(102_743_040L, Head(new TrainingMemoryOptions(BatchSize: 1, SeqLen: 512, TargetTokensPerExample: 66)));
        // every token a target (the default), batch 2 × 1024 = 2,048 rows: 2,048 · 32,768 + 100,039,680 + 2,048 · 8,192
        // = 175 MiB, where logits for all rows would be 2,048 · 1,315,328 = 2.51 GiB
        Assert.Equal(183_925_760L, Head(new TrainingMemoryOptions(BatchSize: 2, SeqLen: 1024)));

        Assert.Throws<UserInputException>(() => Head(new TrainingMemoryOptions(SeqLen: 512, TargetTokensPerExample: 0)));
        Assert.Throws<UserInputException>(() => Head(new TrainingMemoryOptions(SeqLen: 512, TargetTokensPerExample: 513)));
    }

    [Fact]
    public void CpuTrainingPlanSwapsTheCudaContextForTheRuntimeAndAddsWorkspacesAndAllocatorRetention()
    {
        var c = ModelPresets.Get("llama-3.1-8b")!;
        var t = new TrainingMemoryOptions(BatchSize: 1, SeqLen: 256, Rank: 8, Device: MemoryDevice.Cpu, CpuWidening: false);
        var gpu = MemoryPlanner.Training(c, QuantizationOptions.Nf4, t with { Device = MemoryDevice.Cuda }, "8b").Components.ToDictionary(x => x.Name, x => x.Bytes);
        var cpu4 = MemoryPlanner.Training(c, QuantizationOptions.Nf4, t, "8b").Components.ToDictionary(x => x.Name, x => x.Bytes);
        Assert.False(cpu4.ContainsKey("cuda_context"));
        Assert.Equal(MemoryPlanner.CpuRuntimeBytes, cpu4["cpu_runtime"]);
        Assert.Equal(14336L * 4096 * 2, cpu4["dequant_workspace"]); // bf16 buffer of gate/up/down, the largest projections
        Assert.Equal(gpu["activations"], cpu4["activations"]);
        long activationTerms = cpu4["activations"] + cpu4["head_activations"] + cpu4["backward_workspace"];
        Assert.Equal((long)(activationTerms * MemoryPlanner.CpuAllocatorRetention), cpu4["allocator_retention"]);

        var cpu8 = MemoryPlanner.Training(c, QuantizationOptions.Int8, t, "8b").Components.ToDictionary(x => x.Name, x => x.Bytes);
        Assert.Equal(14336L * 4096 * 6, cpu8["dequant_workspace"]); // fp32 forward + bf16 backward buffers
        Assert.Equal(256L * (4096 * 5 + 14336 * 8), cpu8["int8_activations"]); // gate/up: the widest output
        long int8Transients = 32L * 256 * MemoryPlanner.Projections(c).Sum(p => p.In * 5 + p.Out * 8);
        long activationTerms8 = cpu8["activations"] + cpu8["head_activations"] + cpu8["backward_workspace"];
        Assert.Equal((long)((activationTerms8 + int8Transients) * MemoryPlanner.CpuAllocatorRetention), cpu8["allocator_retention"]);
        var cpu16 = MemoryPlanner.Training(c, new QuantizationOptions(Bits: 16), t, "8b").Components.ToDictionary(x => x.Name, x => x.Bytes);
        Assert.False(cpu16.ContainsKey("dequant_workspace"));
    }

    [Fact]
    public void WideningCpusPlanFp32BuffersCappedForDenseWeightsAndFusedGroups()
    {
        var c = ModelPresets.Get("llama-3.1-8b")!;
        var t = new TrainingMemoryOptions(BatchSize: 1, SeqLen: 256, Rank: 8, Device: MemoryDevice.Cpu, CpuWidening: true);
        long Workspace(int bits) => MemoryPlanner.Training(c, bits switch { 4 => QuantizationOptions.Nf4, 8 => QuantizationOptions.Int8, _ => new QuantizationOptions(Bits: 16) }, t, "8b")
            .Components.Single(x => x.Name == "dequant_workspace").Bytes;
        const long cap = 32L * 1024 * 1024; // WeightWorkspace.MaxWidenedElements
        // 4-bit: gate/up/down (14336 × 4096 = 58.7M) dequantized whole into fp32; q/k/v fused (25.2M) and the head's
        // row blocks (capped at 32M of its 525M) are smaller
        Assert.Equal(14336L * 4096 * 4, Workspace(4));
        // 16-bit: every dense weight in blocks of at most the cap (gate/up/down and the head), above the fused q/k/v
        Assert.True(4096L * (4096 + 1024 + 1024) < cap);
        Assert.Equal(cap * 4, Workspace(16));
        // 8-bit: unchanged by widening (its fp32 buffer already holds the largest projection), plus bf16 for backward
        Assert.Equal(14336L * 4096 * 6, Workspace(8));

        // a small model fuses gate + up (2 × 768 × 2048) whole, the largest buffer
        var small = new ModelConfig { HiddenSize = 768, IntermediateSize = 2048, NumLayers = 2, NumHeads = 12, NumKvHeads = 4, HeadDim = 64, VocabSize = 512 };
        long smallWorkspace = MemoryPlanner.Training(small, QuantizationOptions.Nf4, t, "small").Components.Single(x => x.Name == "dequant_workspace").Bytes;
        Assert.Equal(2L * 768 * 2048 * 4, smallWorkspace);
    }

    [Fact]
    public void ReadsAModelFolderAndWritesJson()
    {
        string dir = Directory.CreateTempSubdirectory("finqlora-memory-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "config.json"), ModelPresets.Get("llama-3.1-8b")!.ToJson().ToJsonString());
            var plan = MemoryPlanner.Inference(ModelConfig.Load(dir), new QuantizationOptions(Bits: 8), dir);
            var json = plan.ToJson();
            Assert.Equal(plan.WeightsBytes, json["weights_bytes"]!.GetValue<long>());
            Assert.Equal(plan.TotalBytes, json["total_bytes"]!.GetValue<long>());
            Assert.Equal(plan.Components.Count, json["components"]!.AsObject().Count);
        }
        finally { Directory.Delete(dir, true); }
    }
}
