using FinQLoRA.Loading;
using FinQLoRA.Data.Tokenization;
using FinQLoRA.Inference;
using FinQLoRA.Models;
using FinQLoRA.Tests.Support;
using FinQLoRA.Serving;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Distributed;

/// <summary>One "pipeline" run of the test host on 2 ranks (micro-batch counts 1, 2 and 4 in turn on the same
/// stages), and the single-process greedy reference for the same prompts.</summary>
public sealed record PipelineJob(MpiJob Job, IReadOnlyList<GenerationResult> Reference)
{
    public static readonly int[] MicroBatchCounts = [1, 2, 4];

    public static PipelineJob Run(string folder, ITextTokenizer tokenizer, IReadOnlyList<int[]> prompts, int newTokens)
    {
        string host = Path.Combine(AppContext.BaseDirectory, "FinQLoRA.MpiHost.dll");
        Assert.True(File.Exists(host), $"test host not built: {host}");
        string promptArgument = string.Join(";", prompts.Select(p => string.Join(",", p)));
        var job = MpiJob.Run(2, CliProcess.Dotnet,
            [host, "pipeline", folder, "f32", newTokens.ToString(), string.Join(",", MicroBatchCounts), promptArgument], TimeSpan.FromSeconds(120));

        using var model = ModelLoading.LoadModel(folder, new ModelLoadOptions { DType = ScalarType.Float32 });
        var reference = new TextGenerator(model, tokenizer).GenerateIds(prompts, new GenerationOptions { MaxNewTokens = newTokens }, batchSize: prompts.Count);
        return new PipelineJob(job, reference);
    }

    public MpiJob Finished
    {
        get
        {
            Assert.True(Job.ExitCode == 0, $"mpirun exited with {Job.ExitCode}:\n{Job.Output}");
            return Job;
        }
    }

    /// <summary>Asserts rank 0 printed the reference's output ids and finish reasons for every micro-batch count.</summary>
    public void AssertMatchesReference()
    {
        string ids = string.Join("|", Reference.Select(r => string.Join(",", r.OutputIds)));
        string finish = string.Join("|", Reference.Select(r => r.FinishReason));
        foreach (int m in MicroBatchCounts)
        {
            Assert.Equal(ids, Finished.Text(0, $"ids-m{m}"));
            Assert.Equal(finish, Finished.Text(0, $"finish-m{m}"));
        }
    }
}
