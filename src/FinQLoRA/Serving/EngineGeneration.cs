using FinQLoRA.Inference;
using FinQLoRA.Models;

namespace FinQLoRA.Serving;

/// <summary>
/// Generate's and eval's prompts through the serving engine, in-process and synchronously (vLLM's offline
/// <c>LLM.generate</c> over its engine core): every prompt is submitted at once, the engine admits up to the batch
/// size of them and refills a slot the moment a row ends, and each prompt's events are gathered
/// into a <see cref="GenerationResult"/>. <see cref="GenerationOptions"/> map field for field onto
/// <see cref="SamplingParams"/>; a sampled prompt i draws from its own generator seeded with seed + i, so its text does
/// not depend on the batch it runs in, and a one-prompt run draws exactly as <see cref="TokenSampler"/> seeded with the
/// seed does.
/// </summary>
internal static class EngineGeneration
{
    /// <summary>An engine sized for these prompts: <paramref name="batchSize"/> slots (no more than there are prompts),
    /// each as long as the longest prompt plus <see cref="GenerationOptions.MaxNewTokens"/>, and room in the queue for
    /// every prompt.</summary>
    public static EngineOptions Sizes(IReadOnlyList<int[]> prompts, GenerationOptions options, int batchSize, ModelConfig config) => new()
    {
        MaxBatch = Math.Max(1, Math.Min(batchSize, prompts.Count)),
        MaxQueue = prompts.Count,
        // CheckPrompts keeps a prompt plus its new tokens within the context; with no prompt any small pool will do
        MaxModelLen = Math.Clamp(prompts.Select(p => p.Length).DefaultIfEmpty(0).Max() + options.MaxNewTokens, 2, config.MaxPositionEmbeddings),
    };

    /// <summary>Checks the options and prompts (the messages name generate's fields) and makes one request per prompt,
    /// each checked as the engine will check it, so that nothing is refused once the engine runs.</summary>
    /// <param name="adapters">prompt i's adapter (null: the base model); null: the base model for every prompt</param>
    public static EngineRequest[] Requests(IReadOnlyList<int[]> prompts, GenerationOptions options, int batchSize, ModelConfig config, EngineOptions sizes,
        IReadOnlyList<string?>? adapters = null)
    {
        options.Validate();
        if (batchSize < 1) throw UserInputException.About($"{new ConfigField("batch_size")} must be at least 1 (got {batchSize})");
        options.CheckPrompts(prompts, config.MaxPositionEmbeddings);
        var requests = prompts.Select((p, i) => new EngineRequest(p, adapters?[i], new SamplingParams
        {
            MaxTokens = options.MaxNewTokens, Temperature = options.Temperature, TopK = options.TopK, TopP = options.TopP,
            Seed = options.Seed + i, Stop = options.StopStrings, StopTokenIds = options.StopIds,
        })).ToArray();
        foreach (var request in requests)
        {
            try { request.Check(config.VocabSize, sizes.MaxModelLen); }
            catch (ServingException e) { throw new UserInputException(e.Message); }
        }
        return requests;
    }

    /// <summary>Submits every request and waits for each one's final event, in order.</summary>
    public static GenerationResult[] Run(ServingEngine engine, IReadOnlyList<EngineRequest> requests)
    {
        var streams = requests.Select(engine.Submit).ToList();
        return requests.Select((r, i) =>
        {
            var done = EngineCompletion.ReadAsync(streams[i]).GetAwaiter().GetResult();
            return new GenerationResult(r.PromptIds, [.. done.TokenIds], done.Text, done.FinishReason);
        }).ToArray();
    }
}
