using System.Text.RegularExpressions;
using FinQLoRA.Adapters;
using FinQLoRA.Data.Chat;
using FinQLoRA.Data.Formats;
using FinQLoRA.Data.Sft;
using FinQLoRA.Data.Tokenization;
using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Debugging;

/// <summary>
/// <c>debug dump-grads</c> against central finite differences of the loss, computed here without autograd (the
/// model's fp32 logits, then cross-entropy in doubles over the target positions, divided by their count as a training
/// step divides it), on the seeded fp32 Llama with an adapter whose B is not zero (so A's gradients are not zero).
/// </summary>
public sealed partial class GradientDumpTests
{
    private const int BatchSize = 2;
    private const int MaxSeqLen = 48;

    [Fact]
    public void GradientsMatchFiniteDifferencesUnderPeftKeys()
    {
        using var temp = new TempFolder();
        string data = WriteData(temp);
        string adapter = WriteAdapter(temp.PathOf("adapter"));
        string output = temp.PathOf("grads.safetensors");
        DumpFiles.Run("debug", "dump-grads", "--model", SeededLlama.Folder, "--data", data, "--adapter", adapter, "--dtype", "f32",
            "--batch-size", BatchSize.ToString(), "--max-seq-len", MaxSeqLen.ToString(), "--seed", "3", "--out", output);

        using var scope = NewDisposeScope();
        var grads = DumpFiles.Read(output);
        // PEFT's names: base_model.model + the module path + lora_A/lora_B + .weight, one pair per wrapped projection
        Assert.Equal(5 * 2 * 2, grads.Count);
        Assert.All(grads.Keys, k => Assert.Matches(PeftKey(), k));
        using (var file = new FinQLoRA.Formats.Checkpoints.SafetensorsFile(Path.Combine(adapter, PeftAdapterFiles.WeightsFileName)))
            Assert.Equal(file.Entries.Select(e => e.Name).Order(StringComparer.Ordinal), grads.Keys.Order(StringComparer.Ordinal));

        using var model = ModelLoading.LoadModel(SeededLlama.Folder, new ModelLoadOptions { DType = ScalarType.Float32 });
        PeftAdapterFiles.Load(adapter, model);
        model.eval();
        var batch = Batch(data);
        var parameters = LoraInjector.AdapterParameters(model).ToDictionary(p => PeftAdapterKey.Prefix + p.Name, p => p.P);
        int checkedCoordinates = 0;
        foreach (string key in new[] { "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", "base_model.model.model.layers.4.self_attn.v_proj.lora_A.weight",
                     "base_model.model.model.layers.2.self_attn.q_proj.lora_B.weight", "base_model.model.model.layers.3.self_attn.v_proj.lora_B.weight" })
        {
            var g = grads[key].reshape(-1);
            Assert.True(g.abs().max().item<float>() > 1e-4f, $"{key}: the gradient is zero; the test needs B ≠ 0 to check A");
            // the two largest entries of each tensor: the finite difference is then far above the fp32 noise of the loss
            foreach (long index in g.abs().topk(2).indexes.data<long>().ToArray())
            {
                double analytic = g[index].item<float>();
                double numeric = FiniteDifference(model, parameters[key], index, batch, step: 1e-2);
                Assert.True(Math.Abs(numeric - analytic) <= 2e-3 * Math.Abs(analytic) + 1e-6,
                    $"{key}[{index}]: dump-grads {analytic:G6}, finite difference {numeric:G6}");
                checkedCoordinates++;
            }
        }
        Assert.Equal(8, checkedCoordinates);
    }

    /// <summary>A fresh adapter is seeded as training seeds it (B = 0): A's gradients are exactly zero, B's (and DoRA's
    /// magnitudes') are not, under the default targets' PEFT keys; the record names the step's loss and target tokens.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void FreshAdapterHasZeroGradientsForAOnly(bool dora)
    {
        using var temp = new TempFolder();
        string data = WriteData(temp);
        string output = temp.PathOf("grads.safetensors");
        DumpFiles.Run("debug", "dump-grads", "--model", SeededLlama.Folder, "--data", data, "--dtype", "f32", "--batch-size", "2",
            "--max-seq-len", MaxSeqLen.ToString(), "--targets", "q_proj,k_proj,v_proj", "--use-dora", dora ? "true" : "false", "--out", output);
        using var scope = NewDisposeScope();
        var grads = DumpFiles.Read(output);
        Assert.Equal(5 * 3 * (dora ? 3 : 2), grads.Count);
        Assert.All(grads.Keys, k => Assert.Matches(PeftKey(), k));
        foreach (var (key, g) in grads)
        {
            if (key.Contains(".lora_A.")) TensorAssert.Equal(zeros_like(g), g, key);
            else Assert.True(g.abs().max().item<float>() > 0, $"{key}: B's gradient is zero");
        }
        var record = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(output + ".json"))!;
        Assert.Equal("dump-grads", (string?)record["command"]);
        Assert.True((long)record["target_tokens"]! > 0);
        Assert.True(double.IsFinite((double)record["loss"]!));
    }

    [GeneratedRegex(@"^base_model\.model\.model\.layers\.[0-4]\.self_attn\.[qkv]_proj\.(lora_[AB]\.weight|lora_magnitude_vector)$")]
    private static partial Regex PeftKey();

    private static string WriteData(TempFolder temp) => temp.Write("train.jsonl", string.Join("\n",
        "{\"context\":\"The quarterly revenue rose by ten percent.\",\"target\":\" positive\"}",
        "{\"context\":\"Shares fell after the profit warning was issued.\",\"target\":\" negative\"}",
        "{\"context\":\"This third line is not in the batch.\",\"target\":\" neutral\"}") + "\n");

    /// <summary>A rank-4 LoRA on q and v with B drawn at random (a trained adapter's stand-in: B ≠ 0), saved as PEFT saves it.</summary>
    private static string WriteAdapter(string dir)
    {
        using var model = ModelLoading.LoadModel(SeededLlama.Folder, new ModelLoadOptions { DType = ScalarType.Float32 });
        var config = new LoraConfig { Rank = 4, Alpha = 8, Dropout = 0, TargetModules = ["q_proj", "v_proj"] };
        LoraInjector.Apply(model, config, seed: 11);
        using var generator = new Generator(12);
        using (no_grad())
            foreach (var (name, p) in LoraInjector.AdapterParameters(model))
                if (name.Contains(".lora_B.")) p.copy_(randn(p.shape, generator: generator) * 0.5);
        PeftAdapterFiles.Save(dir, model, config);
        return dir;
    }

    /// <summary>The first two records, tokenized and collated as the trainer does (what is under test is the gradient).</summary>
    private static SftCollator.Batch Batch(string data)
    {
        var tokenizer = ModelLoading.LoadTokenizer(SeededLlama.Folder);
        var records = TrainingData.Read(data, null, () => ChatTemplateDetector.Resolve("auto", "chat_template", SeededLlama.Folder)).Records;
        var sft = new SftTokenizer(tokenizer, MaxSeqLen);
        return SftCollator.Collate(records.Take(BatchSize).Select(sft.Tokenize).ToList(), tokenizer.PadId, CPU);
    }

    private static double FiniteDifference(DecoderModel model, Tensor parameter, long index, SftCollator.Batch batch, double step)
    {
        using var noGrad = no_grad();
        var flat = parameter.view(-1).narrow(0, index, 1);
        float original = flat.item<float>();
        flat.fill_(original + step);
        double plus = MeanTargetLoss(model, batch);
        flat.fill_(original - step);
        double minus = MeanTargetLoss(model, batch);
        flat.fill_(original);
        return (plus - minus) / (2 * step);
    }

    /// <summary>Cross-entropy of each target token from the logits one position before it, in doubles, averaged.</summary>
    private static double MeanTargetLoss(DecoderModel model, SftCollator.Batch batch)
    {
        using var scope = NewDisposeScope();
        var logits = model.Forward(batch.InputIds, batch.PadMask);
        long b = logits.shape[0], t = logits.shape[1], v = logits.shape[2];
        float[] values = logits.contiguous().data<float>().ToArray();
        long[] labels = batch.Labels.data<long>().ToArray();
        double sum = 0;
        long count = 0;
        for (long r = 0; r < b; r++)
            for (long c = 0; c + 1 < t; c++)
            {
                long target = labels[r * t + c + 1];
                if (target == TokenizedExample.IgnoreIndex) continue;
                long row = (r * t + c) * v;
                double max = double.NegativeInfinity;
                for (long k = 0; k < v; k++) max = Math.Max(max, values[row + k]);
                double exp = 0;
                for (long k = 0; k < v; k++) exp += Math.Exp(values[row + k] - max);
                sum += max + Math.Log(exp) - values[row + target];
                count++;
            }
        return sum / count;
    }
}
