using System.Text.Json.Nodes;
using FinQLoRA.Adapters;
using FinQLoRA.Data.Chat;
using FinQLoRA.Data.Formats;
using FinQLoRA.Data.Sft;
using FinQLoRA.Data.Tokenization;
using FinQLoRA.Loading;
using FinQLoRA.Training;
using static TorchSharp.torch;

namespace FinQLoRA.Debugging;

/// <summary>
/// <c>finqlora debug dump-grads</c>: one forward and backward of the training step on a fixed batch, writing the gradient
/// of every adapter parameter under its PEFT key (<c>base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight</c>),
/// fp32. The pieces are the trainer's: the base from <see cref="TrainableModel"/>, a fresh adapter from
/// <see cref="LoraInjector"/> with the run's seed (or a PEFT folder), the first <c>batch_size</c> records in file order
/// through <see cref="SftTokenizer"/> and <see cref="SftCollator"/>, and <see cref="SupervisedLoss"/> divided by the
/// target tokens as <see cref="TrainingStep"/> divides it, so the gradient is the one a one-rank step clips and applies.
/// The model runs in eval mode: dropout is off (the loaded adapter's own dropout too), nothing else changes.
/// A fresh adapter has B = 0, so A's gradients are zero; start from a trained adapter to see them.
/// </summary>
public static class GradientDump
{
    public const string Command = "dump-grads";

    public static DebugDumpResult Run(GradientDumpOptions o)
    {
        var c = o.Config with { Dropout = 0 };
        DebugDump.Check(c.Model, o.OutPath, o.Overwrite, ("data", c.Data), ("adapter", o.Adapter));
        if (c.BatchSize < 1) throw UserInputException.About($"{new ConfigField("batch_size")} must be at least 1 (got {c.BatchSize})");
        if (c.MaxSeqLen < 2) throw UserInputException.About($"{new ConfigField("max_seq_len")} must be at least 2 (got {c.MaxSeqLen})");
        var lora = c.ToLoraConfig();
        if (o.Adapter is null)
        {
            lora.Validate("debug dump-grads");
            TrainableModel.CheckAdapterFits(c);
        }
        var examples = FirstExamples(c);
        var tokenizer = ModelLoading.LoadTokenizer(c.Model);
        var sft = new SftTokenizer(tokenizer, c.MaxSeqLen);
        var batch = examples.Select(sft.Tokenize).ToList();
        long targets = batch.Sum(e => e.Labels.Skip(1).Count(l => l != TokenizedExample.IgnoreIndex)); // as TrainingStep counts them
        if (targets == 0) throw UserInputException.About($"{new ConfigField("data")} {c.Data}: the first {c.BatchSize} examples have no target token within {new ConfigField("max_seq_len")} {c.MaxSeqLen}");

        manual_seed(c.Seed); // as the trainer seeds before it loads
        using var model = TrainableModel.LoadBase(c with { GradCheckpointing = false });
        if (o.Adapter is { } dir) lora = PeftAdapterFiles.Load(dir, model);
        else LoraInjector.Apply(model, lora, c.Seed);
        var parameters = LoraInjector.AdapterParameters(model).ToList();
        model.eval();

        using var scope = NewDisposeScope();
        double loss;
        using (var collated = SftCollator.Collate(batch, tokenizer.PadId, model.Device))
        {
            var sum = SupervisedLoss.Sum(model, collated);
            (sum / targets).backward();
            loss = sum.item<float>() / targets;
        }
        var gradients = parameters
            .Select(p => new KeyValuePair<string, Tensor>(PeftAdapterKey.Prefix + p.Name, (p.P.grad ?? zeros_like(p.P)).detach().to(ScalarType.Float32).cpu()))
            .ToList();
        var details = new JsonObject
        {
            ["data"] = Path.GetFullPath(c.Data),
            ["data_sha256"] = IO.FileHashes.Sha256(c.Data),
            ["batch_size"] = c.BatchSize,
            ["max_seq_len"] = c.MaxSeqLen,
            ["seed"] = c.Seed,
            ["bits"] = (int)c.Bits,
            ["dtype"] = model.ComputeDType.ToString(),
            ["adapter"] = o.Adapter is { } a ? Path.GetFullPath(a) : null,
            ["lora"] = new JsonObject
            {
                ["r"] = lora.Rank, ["lora_alpha"] = lora.Alpha, ["use_rslora"] = lora.UseRsLora, ["use_dora"] = lora.UseDora,
                ["target_modules"] = new JsonArray(lora.TargetModules.Select(t => (JsonNode)t).ToArray()),
            },
            ["target_tokens"] = targets,
            ["loss"] = loss,
        };
        return DebugDump.Write(o.OutPath, Command, c.Model, c.Device, gradients, details);
    }

    /// <summary>The first batch_size records of the data file, in file order (no shuffle, no eval split).</summary>
    private static List<SftRecord> FirstExamples(TrainConfig c)
    {
        var records = TrainingData.Read(c.Data, DataFormats.Parse(c.DataFormat, "data_format"),
            () => ChatTemplateDetector.Resolve(c.ChatTemplate, "chat_template", c.Model)).Records;
        if (records.Count < c.BatchSize)
            throw UserInputException.About($"{new ConfigField("data")} {c.Data}: {records.Count} examples, fewer than {new ConfigField("batch_size")} {c.BatchSize}; lower it");
        return records.Take(c.BatchSize).ToList();
    }
}
