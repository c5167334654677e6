using FinQLoRA.Loading;
using FinQLoRA.Data.Tasks;
using FinQLoRA.Evaluation;
using FinQLoRA.Inference;
using FinQLoRA.Models;
using FinQLoRA.Tests.Support;
using FinQLoRA.Tests.Training;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Evaluation;

/// <summary>Choice mode predicts the label with the highest log-likelihood, computed here independently: one
/// unpadded sequence per (prompt, label), log-softmax at each label position, summed.</summary>
public sealed class ChoiceScorerTests
{
    [Fact]
    public void PicksTheLabelWithTheHighestLogLikelihoodComputedIndependently()
    {
        using var dir = new TempFolder();
        string path = SeededLlama.Folder;
        using var model = ModelLoading.LoadModel(path, new ModelLoadOptions { DType = ScalarType.Float32 });
        var tokenizer = ModelLoading.LoadTokenizer(path);
        var task = TaskRegistry.Get("fpb");
        var examples = ExampleJsonl.Read(TrainingRun.WriteData(dir.Path)).Take(6).ToList();

        var scores = ChoiceScorer.Score(model, tokenizer, examples, task.Labels!, batchSize: 4); // batches mix examples and lengths
        var predicted = ChoiceScorer.Predict(model, tokenizer, examples, task, batchSize: 5);
        for (int i = 0; i < examples.Count; i++)
        {
            var reference = task.Labels!.Select(label => LogLikelihood(model, tokenizer, examples[i].Context, label)).ToArray();
            for (int l = 0; l < reference.Length; l++)
                Assert.True(Math.Abs(reference[l] - scores[i][l]) < 1e-3, $"example {i} label {task.Labels![l]}: {scores[i][l]} vs {reference[l]}");
            Assert.Equal(task.Labels![Array.IndexOf(reference, reference.Max())], predicted[i]);
        }
        Assert.Contains("classification", Assert.Throws<UserInputException>(() =>
            ChoiceScorer.Predict(model, tokenizer, examples, TaskRegistry.Get("financebench"), 4)).Message);
    }

    private static double LogLikelihood(DecoderModel model, FinQLoRA.Data.Tokenization.ITextTokenizer tokenizer, string context, string label)
    {
        using var scope = NewDisposeScope();
        // the harness's split: the prompt without its trailing space, the label with it
        string head = context.TrimEnd();
        int[] prompt = tokenizer.Encode(head, tokenizer.AddsBosByDefault);
        int[] whole = tokenizer.Encode(context + label, tokenizer.AddsBosByDefault);
        using var noGrad = no_grad();
        var logits = model.Forward(tensor(whole.Select(x => (long)x).ToArray(), [1, whole.Length]), ones(1, whole.Length, dtype: ScalarType.Int64));
        var logp = logits[0].log_softmax(-1);
        double sum = 0;
        for (int pos = prompt.Length; pos < whole.Length; pos++) sum += logp[pos - 1, whole[pos]].item<float>();
        return sum;
    }
}

/// <summary>The CLI side: eval --mode choice scores a classification task; a non-classification task is refused first.</summary>
public sealed class ChoiceModeCliTests
{
    [Fact]
    public void EvalInChoiceModeWritesResultsAndRefusesFreeTextTasks()
    {
        using var dir = new TempFolder();
        string outDir = Path.Combine(dir.Path, "eval");
        string data = TrainingRun.WriteData(dir.Path);
        var r = CliProcess.RunSeparately(TimeSpan.FromMinutes(3), "eval", "--model", SeededLlama.Folder, "--tasks", "fpb",
            "--data", data, "--limit", "12", "--mode", "choice", "--out", outDir);
        Assert.True(r.ExitCode == 0, r.Stderr);
        var results = FinQLoRA.Evaluation.RunResultFile.Read(outDir);
        Assert.Equal(12, results.Single().N);
        Assert.Equal(12, File.ReadAllLines(Path.Combine(outDir, "fpb", "predictions.jsonl")).Length);
        Assert.All(File.ReadAllLines(Path.Combine(outDir, "fpb", "predictions.jsonl")),
            l => Assert.Contains(System.Text.Json.Nodes.JsonNode.Parse(l)!["output"]!.GetValue<string>(), TaskRegistry.Get("fpb").Labels!));
        CliProcess.AssertOneLineError(CliProcess.RunSeparately(TimeSpan.FromMinutes(2), "eval", "--model", SeededLlama.Folder,
            "--tasks", "financebench", "--data", data, "--mode", "choice"), "--mode choice");
    }
}
