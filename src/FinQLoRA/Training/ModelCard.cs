using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using FinQLoRA.Adapters;
using FinQLoRA.Quantization;
using FinQLoRA.Runtime;
using FinQLoRA.Training.Optimizers;
using FinQLoRA.Training.Schedules;

namespace FinQLoRA.Training;

/// <summary>
/// The adapter's README.md, in the shape PEFT's model cards have (YAML front matter for the Hub, then model details,
/// uses, limits, training details), filled from the run: base model, data with hashes, hyper-parameters, metrics.
/// </summary>
public static class ModelCard
{
    public const string FileName = "README.md";

    public static string Render(TrainConfig c, JsonObject lineage, int steps, double finalLoss, double? evalLoss, long tokensSeen)
    {
        static string F(double v) => v.ToString("G6", CultureInfo.InvariantCulture);
        var md = new StringBuilder();
        md.Append("---\nlibrary_name: peft\nbase_model: ").Append(Path.GetFileName(Path.GetFullPath(c.Model).TrimEnd('/'))).Append('\n');
        md.Append("tags:\n- lora\n- qlora\n- finqlora\n- finance\n---\n\n");
        md.Append("# LoRA adapter trained with FinQLoRA\n\n## Model details\n\n");
        md.Append($"- Base model: `{c.Model}` ({c.Bits}-bit{(c.Bits == 4 ? $" {FourBitTypes.Spellings.Name(c.Quant)}{(c.DoubleQuant ? " + double quantization" : "")}" : c.Bits == 8 ? " LLM.int8" : "")} while training)\n");
        md.Append($"- Adapter: {(c.UseDora ? "DoRA" : "LoRA")}, rank {c.Rank}, alpha {F(c.Alpha)}{(c.UseRslora ? " (rsLoRA scaling)" : "")}, dropout {F(c.Dropout)}, targets {string.Join(",", c.Targets)}{(c.LoraAFrozen ? $"; A frozen at its init from seed {c.Seed}, only B trained (FFA-LoRA)" : "")}\n");
        md.Append($"- Trained by FinQLoRA {lineage["finqlora_version"]}{(lineage["commit"] is { } commit ? $" (commit {commit})" : "")}\n\n");
        md.Append("## Uses\n\nFine-tuned for the financial task(s) in its training data below, with the same prompt format. ");
        md.Append("Load it with PEFT (`PeftModel.from_pretrained`) or FinQLoRA (`--adapter`) on the base model above.\n\n");
        md.Append("## Bias, risks and limitations\n\nThe adapter inherits the base model's limits and learned only from the data listed here; ");
        md.Append("it is not evaluated for other tasks, languages or time periods. Outputs are not financial advice: ");
        md.Append("validate it on your own held-out data before any use that matters, and review it under your model-risk policy.\n\n");
        md.Append("## Training data\n\n| file | bytes | sha256 |\n|---|---|---|\n");
        foreach (var kind in new[] { "data", "eval_data" })
            foreach (var f in lineage["inputs"]?[kind]?.AsArray() ?? [])
                md.Append($"| {kind}: `{f!["path"]}` | {f["bytes"]} | `{f["sha256"]}` |\n");
        md.Append("\n## Training details\n\n");
        md.Append($"- Optimizer {OptimizerKinds.Spellings.Name(c.Optimizer)}{(c.Optimizer == OptimizerKind.Sgd ? $" (momentum {F(c.Momentum)})" : "")}, learning rate {F(c.Lr)} ({LrScheduleKinds.Spellings.Name(c.LrSchedule)}, {c.WarmupSteps} warmup steps), weight decay {F(c.WeightDecay)}, max grad norm {F(c.MaxGradNorm)}\n");
        md.Append($"- Batch {c.BatchSize} x grad-accum {c.GradAccum}, max sequence length {c.MaxSeqLen}, compute {ComputeDtypes.Spellings.Name(c.Dtype)}, seed {c.Seed}\n");
        md.Append($"- Steps {steps}, tokens seen {tokensSeen}\n\n");
        if (lineage["privacy"] is JsonObject privacy) AppendPrivacy(md, privacy);
        md.Append($"## Results\n\n- Final training loss: {F(finalLoss)}\n");
        if (evalLoss is double e) md.Append($"- Evaluation loss: {F(e)}\n");
        md.Append("\n## Lineage\n\nEvery input and every file of this folder is hashed in `").Append(RunLineage.FileName)
          .Append("`; `finqlora verify <this folder>` checks them.\n");
        return md.ToString();
    }

    /// <summary>The guarantee first, then what it rests on, so that a reader can re-derive ε with <c>finqlora privacy</c>.</summary>
    private static void AppendPrivacy(StringBuilder md, JsonObject p)
    {
        static string F(JsonNode? v) => v is null ? "none" : v.GetValue<double>().ToString("G6", CultureInfo.InvariantCulture);
        string unit = p["unit"]?.GetValue<string>() ?? "example";
        md.Append("## Privacy\n\n");
        md.Append($"- Trained with DP-SGD on the adapter parameters: (ε = {F(p["epsilon"])}, δ = {F(p["delta"])})-differential privacy per {(unit == "example" ? "training example" : $"privacy unit ({unit}: all examples sharing that value)")}, ");
        md.Append($"{p["accountant"]} accountant{(p["optimal_order"] is { } order ? $" (optimal order {F(order)})" : "")}\n");
        md.Append($"- Sample rate q = {F(p["sample_rate"])} ({p["sampling"]} sampling over {p["units"]} units), noise multiplier σ = {F(p["noise_multiplier"])}, clipping norm C = {F(p["max_grad_norm"])}, {p["steps"]} steps\n");
        md.Append($"- Check: `finqlora privacy --sample-rate {F(p["sample_rate"])} --noise-multiplier {F(p["noise_multiplier"])} --steps {p["steps"]} --delta {F(p["delta"])} --accountant {p["accountant"]}`\n");
        md.Append("- Protected: the training data listed above, at that unit. Not protected: the base model, the evaluation data, and any choice of hyper-parameters made by looking at results\n\n");
    }
}
