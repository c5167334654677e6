using FinQLoRA.Data.Tasks;
using FinQLoRA.Data.Tokenization;
using FinQLoRA.Evaluation;
using FinQLoRA.Inference;
using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Recipes;
using FinQLoRA.Tests.Distributed;
using FinQLoRA.Tests.Support;
using FinQLoRA.Tests.Training;
using FinQLoRA.Serving;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Inference;

/// <summary>
/// generate, eval (generate and choice modes) and pipeline generation on a Gemma 2 (sandwich norms, GELU, soft-caps
/// that bind, a window of 6 on the even layers, a tied head) and a Phi-3 (fused qkv/gate_up, partial rotary, LongRoPE):
/// each must give what the single-process generation loop gives for one prompt at a time, however the rows are
/// padded, batched or split over ranks.
/// </summary>
public sealed class FamilyGenerationTests
{
    private static readonly string[] Prompts =
        ["Once upon a time there was a little dog", "Lily", "The sun was hot and the park was full of children and", "Tom had a big red ball"];

    private static readonly ModelLoadOptions F32 = new() { DType = ScalarType.Float32 };

    /// <summary>One prompt alone through <see cref="TextGenerator"/>: no padding, batch 1.</summary>
    private static GenerationResult Alone(TextGenerator generator, int[] prompt, int maxNewTokens) =>
        generator.GenerateIds([prompt], new GenerationOptions { MaxNewTokens = maxNewTokens }, 1)[0];

    [Theory]
    [InlineData("gemma2")]
    [InlineData("phi3")]
    public void GenerateInBatchesEqualsEachPromptAlone(string family)
    {
        using var dir = new TempFolder();
        string folder = SeededFamilies.Write(dir.Path, family);
        var result = GenerateRecipe.Run(new GenerateRecipeOptions
        {
            ModelPath = folder, Load = F32, Prompts = [.. Prompts.Select(p => new GenerateRecipePrompt(p))],
            Generation = new GenerationOptions { MaxNewTokens = 12 }, BatchSize = 3, // left padding: rows of different lengths
        });
        using var model = SeededFamilies.Load(folder);
        var generator = new TextGenerator(model, ModelLoading.LoadTokenizer(folder));
        if (family == "gemma2") Assert.Contains(result.Outputs, g => g.PromptIds.Length + g.OutputIds.Length > 2 * SeededFamilies.Window);
        for (int i = 0; i < Prompts.Length; i++)
        {
            var alone = Alone(generator, result.Outputs[i].PromptIds, 12);
            Assert.Equal(alone.OutputIds, result.Outputs[i].OutputIds);
            Assert.Equal(alone.Text, result.Outputs[i].Text);
        }
    }

    [Theory]
    [InlineData("gemma2")]
    [InlineData("phi3")]
    public void EvalInGenerateAndChoiceModesEqualsTheModelOnEachExampleAlone(string family)
    {
        using var dir = new TempFolder();
        string folder = SeededFamilies.Write(Path.Combine(dir.Path, "model"), family);
        string data = TrainingRun.WriteData(Path.Combine(dir.Path, "data"));
        var task = TaskRegistry.Get("fpb");
        var examples = ExampleJsonl.Read(data).Take(6).ToList();
        var request = new EvaluationRequest(folder, F32, 16, ["fpb"]) { Data = data, Limit = 6, BatchSize = 4 };

        var generated = EvaluationRecipe.Run(request with { Out = Path.Combine(dir.Path, "gen") });
        var choice = EvaluationRecipe.Run(request with { Out = Path.Combine(dir.Path, "choice"), Choice = true });
        Assert.Equal(6, generated.Single().N);
        Assert.Equal(6, choice.Single().N);
        var generatedOutputs = PredictionFile.Read(Path.Combine(dir.Path, "gen", "fpb", "predictions.jsonl")).Select(p => p.Output).ToList();
        var choiceOutputs = PredictionFile.Read(Path.Combine(dir.Path, "choice", "fpb", "predictions.jsonl")).Select(p => p.Output).ToList();

        using var model = SeededFamilies.Load(folder);
        var tokenizer = ModelLoading.LoadTokenizer(folder);
        var generator = new TextGenerator(model, tokenizer);
        for (int i = 0; i < examples.Count; i++)
        {
            int[] prompt = tokenizer.Encode(examples[i].Context, tokenizer.AddsBosByDefault);
            Assert.Equal(Alone(generator, prompt, task.MaxNewTokens).Text.Trim(), generatedOutputs[i]);
            var likelihoods = task.Labels!.Select(label => LogLikelihood(model, tokenizer, examples[i].Context, label)).ToArray();
            Assert.Equal(task.Labels![Array.IndexOf(likelihoods, likelihoods.Max())], choiceOutputs[i]);
        }
    }

    /// <summary>The label's log-likelihood after the prompt from one unpadded forward of prompt + label (the harness's
    /// split: the prompt without its trailing space, the label with it).</summary>
    private static double LogLikelihood(DecoderModel model, ITextTokenizer tokenizer, string context, string label)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        int[] prompt = tokenizer.Encode(context.TrimEnd(), tokenizer.AddsBosByDefault);
        int[] whole = tokenizer.Encode(context + label, tokenizer.AddsBosByDefault);
        var logp = model.Forward(tensor(whole.Select(x => (long)x).ToArray(), [1, whole.Length]))[0].log_softmax(-1);
        double sum = 0;
        for (int pos = prompt.Length; pos < whole.Length; pos++) sum += logp[pos - 1, whole[pos]].item<float>();
        return sum;
    }
}

/// <summary>Gemma 2 and Phi-3 split over two MPI ranks (layers 0-1 and 2-3 of 4, the embeddings on the first, the
/// head on the second: for the tied Gemma a copy of the embeddings): greedy ids and finish reasons with 1, 2 and 4
/// micro-batches equal the single-process generator's.</summary>
[Collection(MpiCollection.Name)]
public sealed class FamilyPipelineMpiTests
{
    [MpiFact]
    public void Gemma2PipelineGenerationEqualsOneProcess() => Run("gemma2");

    [MpiFact]
    public void Phi3PipelineGenerationEqualsOneProcess() => Run("phi3");

    private static void Run(string family)
    {
        using var dir = new TempFolder();
        string folder = SeededFamilies.Write(dir.Path, family);
        var tokenizer = ModelLoading.LoadTokenizer(folder);
        string[] texts = ["Once upon a time there was a little dog", "Lily", "The sun was hot and the park was full of", "Tom had a big", "Sam"];
        var job = PipelineJob.Run(folder, tokenizer, [.. texts.Select(t => tokenizer.Encode(t, addBos: true))], newTokens: 12);
        job.AssertMatchesReference();
    }
}
