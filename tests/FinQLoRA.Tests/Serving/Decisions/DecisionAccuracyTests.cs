// The official client marks its Decisions API (public beta) as for evaluation: exactly what these tests do with it.
#pragma warning disable OPENAI001
using System.ClientModel;
using System.Text.Json.Nodes;
using FinQLoRA.Data.Tasks;
using FinQLoRA.Evaluation;
using FinQLoRA.Loading;
using FinQLoRA.Recipes;
using FinQLoRA.Server;
using FinQLoRA.Serving.Decisions;
using FinQLoRA.Tests.Support;
using FinQLoRA.Training;
using OpenAI.Decisions;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Serving.Decisions;

/// <summary>
/// The real stories260K, fine-tuned for a few steps on FPB, TFNS and headline training data rendered as decision
/// prompts (test items excluded), answers the first items of each task's test file through <c>/v1/decisions</c>
/// (headline's questions about one headline in one request, sharing its input) with exactly the predictions
/// <c>eval --mode choice</c> makes with the same adapter on the same prompts: the served path (continuous batch,
/// prefix cache, one row per option) against the eval path (padded batches, no cache).
/// </summary>
public sealed class DecisionAccuracyTests
{
    private const int PerTask = 24;
    private const int Seed = 7;

    [SharedFact]
    public async Task AFineTunedAdaptersDecisionsEqualEvalChoiceModeOnFpbTfnsAndHeadline()
    {
        using var temp = new TempFolder();
        string model = Shared.File("models/stories260K-hf");
        string adapter = Train(model, temp.Path);

        var tests = new Dictionary<string, List<Example>>
        {
            ["fpb"] = ExampleJsonl.Read(Shared.File("data/finlora-test/fpb_test.jsonl")).Take(PerTask).ToList(),
            ["tfns"] = ExampleJsonl.Read(Shared.File("data/finlora-test/tfns_test.jsonl")).Take(PerTask).ToList(),
            ["headline"] = TaskDataBuilder.Build("headline", [Shared.File("data/headline/gold-headlines-train.tsv")], DataSplit.Test, [], Seed).Examples.Take(PerTask).ToList(),
        };

        var host = ServerHost.Open(new ServerHostOptions
        {
            ModelPath = model, Load = new ModelLoadOptions { DType = ScalarType.Float32 }, Adapters = [("tuned", adapter)],
            Server = new ServerOptions { ServedModelName = "stories", Port = 0 }, MaxBatch = 8, MaxModelLen = 512, PrefixCacheGib = 0.03125,
        });
        await host.StartAsync();
        try
        {
            var client = new DecisionsClient(new ApiKeyCredential("unused"), new DecisionsClientOptions { Endpoint = new Uri(host.Server.Url!, "v1") });
            foreach (var (name, items) in tests)
            {
                var task = TaskRegistry.Get(name);
                var (evalPredictions, evalAccuracy) = EvalChoice(model, adapter, task, items, Path.Combine(temp.Path, "eval-" + name));
                var served = await ServeAsync(client, task, items);
                Assert.Equal(evalPredictions, served);
                double accuracy = served.Zip(items, (p, e) => p == e.Target ? 1.0 : 0).Average();
                Assert.Equal(evalAccuracy, accuracy, 9);
                Console.WriteLine($"{name}: {items.Count} items, accuracy {accuracy:P1} through decisions and eval --mode choice alike");
            }
        }
        finally
        {
            await host.StopAsync();
            await host.DisposeAsync();
        }
    }

    /// <summary>A LoRA trained on a mix of the three tasks' training sides, each prompt in the decision rendering.</summary>
    private static string Train(string model, string dir)
    {
        var sources = new (string Task, string Source, string? Exclude)[]
        {
            ("fpb", "data/fpb/FinancialPhraseBank-v1.0/Sentences_50Agree.txt", "data/finlora-test/fpb_test.jsonl"),
            ("tfns", "data/tfns/sent_train.csv", "data/finlora-test/tfns_test.jsonl"),
            ("headline", "data/headline/gold-headlines-train.tsv", null),
        };
        var lines = new List<string>();
        foreach (var (name, source, exclude) in sources)
        {
            var task = TaskRegistry.Get(name);
            var examples = TaskDataBuilder.Build(task, [Shared.File(source)], DataSplit.Train, exclude is null ? [] : [Shared.File(exclude)], Seed).Examples;
            foreach (var e in examples.Take(96).Select(e => TaskDecisions.AsDecisionPrompt(task, e)))
                lines.Add(new JsonObject { ["context"] = e.Context, ["target"] = e.Target }.ToJsonString());
        }
        string data = Path.Combine(dir, "train.jsonl");
        File.WriteAllLines(data, lines.OrderBy(l => l.GetHashCode(StringComparison.Ordinal)));
        var result = FineTuneRecipe.Run(new FineTuneOptions { Config = new TrainConfig
        {
            Model = model, Data = data, Out = Path.Combine(dir, "run"), Bits = 16, Dtype = ScalarType.Float32, Rank = 16, Alpha = 32, Dropout = 0,
            Targets = [FinQLoRA.Adapters.LoraTargets.AllLinear], Lr = 1e-2, MaxSteps = 80, BatchSize = 8, WarmupSteps = 0, SaveEvery = 0, MaxSeqLen = 256, Seed = Seed,
        } });
        return result.AdapterDir;
    }

    /// <summary>eval --mode choice on the decision prompts: its predictions and accuracy.</summary>
    private static (List<string> Predictions, double Accuracy) EvalChoice(string model, string adapter, TaskDefinition task, List<Example> items, string dir)
    {
        Directory.CreateDirectory(dir);
        string data = Path.Combine(dir, "test.jsonl");
        File.WriteAllLines(data, items.Select(e => TaskDecisions.AsDecisionPrompt(task, e)).Select(e => new JsonObject { ["context"] = e.Context, ["target"] = e.Target }.ToJsonString()));
        var result = EvaluationRecipe.Run(new EvaluationRequest(model, new ModelLoadOptions { DType = ScalarType.Float32 }, 16, [task.Name])
            { Data = data, Adapter = adapter, Choice = true, Out = Path.Combine(dir, "out"), BatchSize = 8 }).Single();
        var predictions = PredictionFile.Read(Path.Combine(dir, "out", task.Name, "predictions.jsonl")).Select(p => p.Output).ToList();
        return (predictions, result.Accuracy);
    }

    /// <summary>Each item as a decision on the adapter; items about the same input (headline's nine questions) share one request.</summary>
    private static async Task<List<string>> ServeAsync(DecisionsClient client, TaskDefinition task, List<Example> items)
    {
        var predictions = new string[items.Count];
        foreach (var group in items.Select((e, i) => (Item: TaskDecisions.From(task, e), Index: i)).GroupBy(x => x.Item.Input[0].Content))
        {
            var members = group.ToList();
            var request = new DecisionCreationOptions([new DecisionsUserMessageItem([new DecisionsInputTextContentPart(group.Key)])], "tuned",
                members.Select(m => (DecisionsQuestion)new DecisionsChoiceQuestion(m.Item.Question.Choices.Select(c => new DecisionsChoice(c.Value.Text!)),
                    [new DecisionsInputTextInstructionsPart(m.Item.Question.Instructions)])));
            var result = (await client.CreateDecisionAsync(request)).Value;
            for (int j = 0; j < members.Count; j++)
                predictions[members[j].Index] = ((DecisionsChoiceAnswer)result.Answers[j]).Choice.StringValue;
        }
        return [.. predictions];
    }
}
