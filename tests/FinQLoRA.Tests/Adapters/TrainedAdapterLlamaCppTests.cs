using FinQLoRA.Recipes;
using FinQLoRA.Loading;
using System.Text.Json.Nodes;
using FinQLoRA.Adapters;
using FinQLoRA.Inference;
using FinQLoRA.Models;
using FinQLoRA.Tests.Formats.Gguf;
using FinQLoRA.Tests.Support;
using FinQLoRA.Training;
using FinQLoRA.Serving;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Adapters;

/// <summary>
/// The whole adapter path against llama.cpp: train a LoRA adapter on the stories260K GGUF with the trainer
/// (<c>finqlora train</c>), export it (<c>finqlora export-adapter</c>), apply it in llama.cpp to the same GGUF, and
/// check that llama.cpp's 32-token greedy continuation equals ours (<c>finqlora generate --adapter</c>).
/// </summary>
public sealed class TrainedAdapterLlamaCppTests : IDisposable
{
    private static string BaseGguf => Shared.File("models/stories260K/stories260K.gguf");
    private const int NewTokens = 32;
    private static readonly string[] Prompts = ["Once upon a time, there was a little", "One day, Tom went to the", "Lily saw a big"];
    private static readonly string[] Animals = ["cat", "dog", "bird", "fish", "frog", "bunny", "bear", "duck"];
    private static readonly string[] Names = ["Tom", "Lily", "Sue", "Ben", "Max", "Anna"];
    private readonly TempFolder _temp = new();

    public void Dispose() => _temp.Dispose();

    /// <summary>Story-like lines whose continuation is always the same unusual sentence, so training visibly changes it.</summary>
    private string WriteData()
    {
        string path = Path.Combine(_temp.Path, "stories.jsonl");
        var lines = new List<string>();
        foreach (string name in Names)
            foreach (string animal in Animals.Take(6))
            {
                var o = new JsonObject
                {
                    ["context"] = $"{name} had a little {animal}.",
                    ["target"] = " The sun was green and the moon was blue.",
                };
                lines.Add(o.ToJsonString());
            }
        File.WriteAllLines(path, lines);
        return path;
    }

    [SharedFact]
    public void LlamaCppWithTheExportedTrainedAdapterGeneratesWhatWeGenerate()
    {
        var result = FineTuneRecipe.Run(new FineTuneOptions { Config = new TrainConfig
        {
            Model = BaseGguf, Data = WriteData(), Out = Path.Combine(_temp.Path, "run"), Bits = 16, Dtype = ScalarType.Float32,
            Rank = 8, Alpha = 16, Dropout = 0, Targets = [LoraTargets.AllLinear], Lr = 1e-2, MaxSteps = 30, BatchSize = 12, GradAccum = 1,
            WarmupSteps = 0, LrSchedule = FinQLoRA.Training.Schedules.LrScheduleKind.Constant, SaveEvery = 0, MaxSeqLen = 64, Seed = 7,
        } });
        Assert.True(result.FinalLoss < 1.0, $"training did not learn the target sentence (final loss {result.FinalLoss:F3})");

        string lora = Path.Combine(_temp.Path, "adapter.gguf");
        GgufAdapterExporter.Export(result.AdapterDir, lora, BaseGguf);

        var tokenizer = ModelLoading.LoadTokenizer(BaseGguf);
        var ids = Prompts.Select(p => tokenizer.Encode(p, addBos: true)).ToList();
        using var model = ModelLoading.LoadModel(BaseGguf, new ModelLoadOptions { DType = ScalarType.Float32 });
        var generator = new TextGenerator(model, tokenizer);
        var options = new GenerationOptions { MaxNewTokens = NewTokens };
        // batch 1: no left padding, the same computation llama.cpp does.
        var plain = generator.GenerateIds(ids, options, batchSize: 1);
        PeftAdapterFiles.Load(result.AdapterDir, model);
        var ours = generator.GenerateIds(ids, options, batchSize: 1);

        int changed = 0;
        for (int i = 0; i < Prompts.Length; i++)
        {
            Assert.Equal(ids[i], LlamaCppReference.Tokenize(BaseGguf, Prompts[i]));
            var (_, reference) = LlamaCppReference.Run(BaseGguf, ids[i], NewTokens, lora);
            // Ours stops at EOS (not included); llama.cpp runs on, so compare up to our stop and check the stop token.
            int[] expected = reference.Take(ours[i].OutputIds.Length).ToArray();
            Assert.True(expected.SequenceEqual(ours[i].OutputIds),
                $"prompt {i}: llama.cpp [{string.Join(",", reference)}] vs ours [{string.Join(",", ours[i].OutputIds)}]");
            if (ours[i].FinishReason.StopToken is not null) Assert.Contains(reference[ours[i].OutputIds.Length], tokenizer.EosIds);
            else Assert.Equal(NewTokens, ours[i].OutputIds.Length);
            if (!plain[i].OutputIds.SequenceEqual(ours[i].OutputIds)) changed++;
            Console.WriteLine($"base:    {Prompts[i]}{plain[i].Text}\nadapter: {Prompts[i]}{ours[i].Text}");
        }
        Assert.True(changed == Prompts.Length, $"the trained adapter changed only {changed} of {Prompts.Length} continuations; the comparison would not catch a lost adapter");
    }
}
