using System.ClientModel;
using FinQLoRA.Adapters;
using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Server;
using FinQLoRA.Tests.Adapters;
using FinQLoRA.Tests.Distributed;
using FinQLoRA.Tests.Support;
using OpenAI;
using OpenAI.Chat;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Serving.Pipeline;

/// <summary>
/// <c>serve --pipeline-stages 2</c> under mpirun on the CPU against the same model served by one process: the same
/// greedy answers for concurrent chat requests on the base and two adapters (rows of different adapters share each
/// step and its micro-batches), also with one device slot for the two adapters (residency's slot writes mirrored on
/// the other stage), through the official OpenAI client; and a stage that stops answering ends the server
/// with a line naming its rank.
/// </summary>
[Collection(MpiCollection.Name)]
public sealed class PipelineServeMpiTests
{
    private const string ModelName = "tiny";
    private const int MaxTokens = 12;
    private static readonly string[] Questions = ["What is a bond?", "Name a stock index.", "Is cash an asset?", "What is a loan?"];
    private static readonly string[] Models = [ModelName, "a", "b"];

    /// <summary>A 4-layer seeded Llama with Llama 3's chat format (2 layers per stage) and adapters a (q, v) and b
    /// (up, down, o) with nonzero B, so each changes the answers.</summary>
    private static string WriteModel(string dir)
    {
        string model = Path.Combine(dir, "model");
        SeededChatLlama.Write(model, seed: 11, SeededChatLlama.Config(layers: 4));
        SaveAdapter(model, Path.Combine(dir, "a"), 1, ["q_proj", "v_proj"], 4);
        SaveAdapter(model, Path.Combine(dir, "b"), 2, ["up_proj", "down_proj", "o_proj"], 8);
        return model;
    }

    private static void SaveAdapter(string modelDir, string dir, long seed, string[] targets, int rank)
    {
        using var model = ModelLoading.LoadModel(modelDir, new ModelLoadOptions { DType = ScalarType.Float32 });
        var config = new LoraConfig { Rank = rank, Alpha = 2 * rank, TargetModules = targets };
        LoraInjector.Apply(model, config, seed);
        LoraTestKit.Randomize(model, "default", seed, scale: 0.3);
        PeftAdapterFiles.Save(dir, model, config);
    }

    private static string[] ServeArguments(string dir, string model) =>
        ["--model", model, "--dtype", "f32", "--port", "0", "--served-model-name", ModelName,
         "--adapter", $"a={Path.Combine(dir, "a")}", "--adapter", $"b={Path.Combine(dir, "b")}", "--max-batch", "8", "--max-model-len", "128"];

    /// <summary>Every (model, question) at once, greedy: each answer's text and token counts.</summary>
    private static async Task<string[]> AskAllAsync(Uri url)
    {
        var greedy = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = MaxTokens };
        var asks = from model in Models
                   from question in Questions
                   select Task.Run(async () =>
                   {
                       var client = new ChatClient(model, new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = new Uri(url, "v1") });
                       var c = (await client.CompleteChatAsync([new UserChatMessage(question)], greedy)).Value;
                       return $"{model} | {question} | {c.Content[0].Text} | {c.Usage.InputTokenCount}+{c.Usage.OutputTokenCount} | {c.FinishReason}";
                   });
        return await Task.WhenAll(asks);
    }

    [MpiFact]
    public async Task TwoStagesAnswerAsOneProcessWithMixedAdapters()
    {
        using var temp = new TempFolder();
        string model = WriteModel(temp.Path);

        string[] reference;
        var options = new ServerHostOptions
        {
            ModelPath = model, Load = new ModelLoadOptions { DType = ScalarType.Float32 },
            Adapters = [("a", Path.Combine(temp.Path, "a")), ("b", Path.Combine(temp.Path, "b"))],
            Server = new ServerOptions { ServedModelName = ModelName, Port = 0 }, MaxBatch = 8, MaxModelLen = 128, PrefixCacheGib = 0,
        };
        await using (var single = ServerHost.Open(options))
        {
            await single.StartAsync();
            reference = await AskAllAsync(single.Server.Url!);
            await single.StopAsync();
        }
        // the adapters change the answers, so equal answers mean each row got its own adapter on both stages
        Assert.Equal(Questions.Length * Models.Length, reference.Distinct().Count());
        Assert.NotEqual(reference.Select(r => r.Split(" | ")[2]).Take(Questions.Length), reference.Select(r => r.Split(" | ")[2]).Skip(Questions.Length).Take(Questions.Length));

        // the last run has one device slot for two adapters: rank 0's residency swaps a and b in and out of stack
        // index 1 while their requests wait, and the other stage must write the same adapter there each time
        foreach (string[] flags in new string[][] { ["--micro-batches", "2"], ["--micro-batches", "1"], ["--micro-batches", "2", "--max-loras", "1"] })
        {
            await using var job = await PipelineServeJob.StartAsync([.. ServeArguments(temp.Path, model), "--pipeline-stages", "2", .. flags]);
            var served = await AskAllAsync(job.Url);
            Assert.Equal(reference, served);
        }
    }

    [MpiFact]
    public async Task AStageThatStopsAnsweringEndsTheServerNamingItsRank()
    {
        using var temp = new TempFolder();
        string model = WriteModel(temp.Path);
        await using var job = await PipelineServeJob.StartAsync([.. ServeArguments(temp.Path, model), "--pipeline-stages", "2"],
            new Dictionary<string, string> { ["FINQLORA_TEST_PIPELINE_FAULT"] = "stall:2", ["FINQLORA_COLLECTIVE_TIMEOUT"] = "3" });
        var client = new ChatClient(ModelName, new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = new Uri(job.Url, "v1") });
        var asked = client.CompleteChatAsync([new UserChatMessage(Questions[0])], new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = MaxTokens });
        Assert.True(await job.WaitForExitAsync(TimeSpan.FromSeconds(60)), $"the server did not end:\n{job.Output}");
        Assert.NotEqual(0, job.ExitCode);
        Assert.Contains("rank 1: FINQLORA_TEST_PIPELINE_FAULT=stall:2: failing now", job.Output);
        Assert.Contains("rank 0: collective MPI_Irecv(from rank 1, tag 16) timed out after 3 s; another rank probably died — aborting", job.Output);
        await Assert.ThrowsAnyAsync<Exception>(async () => await asked);
    }

    [MpiFact]
    public async Task AStageThatExitsEndsTheServerWithMpirunsLineNamingItsRank()
    {
        using var temp = new TempFolder();
        string model = WriteModel(temp.Path);
        await using var job = await PipelineServeJob.StartAsync([.. ServeArguments(temp.Path, model), "--pipeline-stages", "2"],
            new Dictionary<string, string> { ["FINQLORA_TEST_PIPELINE_FAULT"] = "exit:2" });
        var client = new ChatClient(ModelName, new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = new Uri(job.Url, "v1") });
        var asked = client.CompleteChatAsync([new UserChatMessage(Questions[0])], new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = MaxTokens });
        Assert.True(await job.WaitForExitAsync(TimeSpan.FromSeconds(60)), $"the server did not end:\n{job.Output}");
        Assert.Equal(3, job.ExitCode);
        Assert.Contains("rank 1: FINQLORA_TEST_PIPELINE_FAULT=exit:2: failing now", job.Output);
        Assert.Contains("Exit code:    3", job.Output);
        await Assert.ThrowsAnyAsync<Exception>(async () => await asked);
    }
}
