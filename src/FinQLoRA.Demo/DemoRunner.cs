using FinQLoRA.Loading;
using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using FinQLoRA.Adapters;
using FinQLoRA.Data.Sft;
using FinQLoRA.Data.Tasks;
using FinQLoRA.Evaluation;
using FinQLoRA.Inference;
using FinQLoRA.Serving;
using FinQLoRA.IO;
using FinQLoRA.Models;
using FinQLoRA.Quantization;
using FinQLoRA.Recipes;
using FinQLoRA.Training;
using static TorchSharp.torch;

namespace FinQLoRA.Demo;

/// <summary>
/// The whole job on an embedded default, no download: a small Llama from a fixed seed with GPT-2's tokenizer
/// (from a NuGet package), a generated financial sentiment task in the reference prompt format, the base measured
/// at 4-bit, a rank-4 QLoRA adapter trained, the fine-tuned model measured again.
/// </summary>
public static class DemoRunner
{
    public sealed record Summary(double BaseAccuracy, double FinetunedAccuracy, double? BaseWeightedF1, double? FinetunedWeightedF1,
        double TrainSeconds, long AdapterBytes, int TrainExamples, int TestExamples, double FinalLoss, double TokensPerSecond);

    public static ModelConfig DemoModelConfig(int vocabSize) => new()
    {
        HiddenSize = 128, IntermediateSize = 344, NumLayers = 4, NumHeads = 4, NumKvHeads = 2, HeadDim = 32,
        VocabSize = vocabSize, MaxPositionEmbeddings = 256, RmsNormEps = 1e-5, RopeTheta = 10000,
        BosTokenId = 0, EosTokenIds = [0],
    };

    public static Summary Run(string outDir, Action<string> log, int trainExamples = 512, int testExamples = 120, int epochs = 8)
    {
        var total = Stopwatch.StartNew();
        // The demo replaces its own earlier output (a folder FinQLoRA marked), never a folder of anybody else's files.
        IO.OutputPlacement.CheckFolder(outDir, [], overwrite: true);
        IO.OutputPlacement.ClearOwnFolder(outDir);
        Directory.CreateDirectory(outDir);
        IO.OutputMarker.Write(outDir, "demo");
        var (train, test) = SyntheticSentiment.Make(trainExamples, testExamples, seed: 7);
        var tokenizer = new TrimmedTokenizer(DemoTokenizer.Create(), train.Concat(test).SelectMany(e => new[] { e.Context, e.Target }));
        var modelConfig = DemoModelConfig(tokenizer.VocabSize);
        string baseDir = Path.Combine(outDir, "base-model");
        RandomLlama.WriteHfFolder(modelConfig, baseDir, seed: 1234);
        string trainFile = Path.Combine(outDir, "data", "train.jsonl");
        WriteJsonl(trainFile, train);
        WriteJsonl(Path.Combine(outDir, "data", "test.jsonl"), test);
        log($"model: random Llama ({modelConfig.NumLayers} layers, hidden {modelConfig.HiddenSize}; GPT-2 tokenizer trimmed to the {tokenizer.VocabSize} tokens the task uses) in {baseDir}");
        log($"task: synthetic financial news sentiment, {train.Count} train / {test.Count} test prompts (no overlap)");

        var load = new ModelLoadOptions { DType = ScalarType.Float32 }.WithBits(4);
        var baseResult = Evaluate(baseDir, null, load, tokenizer, test, Path.Combine(outDir, "eval-base"), fineTuned: false);
        log($"base model (4-bit NF4): accuracy {baseResult.Accuracy:P1}");

        var config = new TrainConfig
        {
            Model = baseDir, Data = trainFile, Out = Path.Combine(outDir, "train"), Bits = 4,
            Dropout = 0.05, // lighter than the default: a few hundred short examples, a handful of epochs
            Targets = [LoraTargets.AllLinear], Lr = 3e-3, Epochs = epochs, BatchSize = 16, GradAccum = 1, MaxSeqLen = 128, WarmupSteps = 5,
            SaveEvery = 0, LogEvery = 8, Seed = 42, Dtype = ScalarType.Float32, LrSchedule = Training.Schedules.LrScheduleKind.Cosine,
        };
        var trained = FineTuneRecipe.Run(new FineTuneOptions { Config = config, Progress = log, Tokenizer = tokenizer });
        var tunedResult = Evaluate(baseDir, trained.AdapterDir, load, tokenizer, test, Path.Combine(outDir, "eval-finetuned"), fineTuned: true);
        log($"fine-tuned (4-bit base + rank-{config.Rank} adapter): accuracy {tunedResult.Accuracy:P1}");

        var summary = new Summary(baseResult.Accuracy, tunedResult.Accuracy, baseResult.WeightedF1, tunedResult.WeightedF1,
            trained.TrainSeconds, trained.AdapterBytes, train.Count, test.Count, trained.FinalLoss, trained.TokensPerSecond);
        var json = new JsonObject
        {
            ["base_accuracy"] = summary.BaseAccuracy, ["finetuned_accuracy"] = summary.FinetunedAccuracy,
            ["base_weighted_f1"] = summary.BaseWeightedF1, ["finetuned_weighted_f1"] = summary.FinetunedWeightedF1,
            ["train_seconds"] = Math.Round(summary.TrainSeconds, 2), ["adapter_bytes"] = summary.AdapterBytes,
            ["train_examples"] = summary.TrainExamples, ["test_examples"] = summary.TestExamples,
            ["final_loss"] = summary.FinalLoss, ["tokens_per_second"] = Math.Round(summary.TokensPerSecond, 1),
            ["total_seconds"] = Math.Round(total.Elapsed.TotalSeconds, 2), ["bits"] = 4, ["rank"] = config.Rank,
        };
        AtomicFile.WriteAllText(Path.Combine(outDir, "summary.json"), json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return summary;
    }

    private static RunResult Evaluate(string baseDir, string? adapter, ModelLoadOptions load, Data.Tokenization.ITextTokenizer tokenizer,
        List<Example> test, string outDir, bool fineTuned)
    {
        using var model = ModelLoading.LoadModel(baseDir, load);
        if (adapter != null) PeftAdapterFiles.Load(adapter, model);
        var evaluator = new TaskEvaluator(new TextGenerator(model, tokenizer), model);
        return evaluator.Evaluate("tfns", test, new TaskEvaluator.Options("demo-llama", 4, fineTuned ? 4 : null, fineTuned, BatchSize: 30), outDir).Result!;
    }

    private static void WriteJsonl(string path, IEnumerable<Example> examples) =>
        AtomicFile.WriteAllText(path, string.Concat(examples.Select(e =>
            JsonSerializer.Serialize(new Dictionary<string, string> { ["context"] = e.Context, ["target"] = e.Target }) + "\n")));
}
