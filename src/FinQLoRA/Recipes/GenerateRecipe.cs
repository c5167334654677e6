using FinQLoRA.Data.Chat;
using FinQLoRA.Data.Tokenization;
using FinQLoRA.Inference;
using FinQLoRA.Loading;
using FinQLoRA.Serving;

namespace FinQLoRA.Recipes;

/// <summary>
/// <c>finqlora generate</c> end to end: checks the options before anything loads, opens the model in one process or
/// as pipeline stages (<see cref="GenerationSession"/>), encodes the prompts (raw, or as a chat user turn) and
/// generates; in one process each prompt is answered with its adapter (<see cref="MultiAdapterGenerator"/>).
/// </summary>
public static class GenerateRecipe
{
    public static GenerateRecipeResult Run(GenerateRecipeOptions options)
    {
        var generation = options.Generation;
        generation.Validate(); // before the model loads
        if (options.BatchSize < 1) throw UserInputException.About($"{new ConfigField("batch_size")} must be at least 1 (got {options.BatchSize})");

        using var session = GenerationSession.Open(new GenerationSetup(options.ModelPath, options.Load)
        {
            Adapters = options.Adapters, PipelineStages = options.PipelineStages, MicroBatches = options.MicroBatches, Command = "generate",
        });
        var chat = options.Chat ? ChatFormatOf(options.ModelPath, session.Tokenizer) : null; // on every rank: a refusal stops them all
        var ids = session.IsMain ? Encode(options, chat, session.Tokenizer) : [];
        if (session.SingleProcess is not { } generator)
        {
            // one stage per rank: every rank takes part, the main rank alone gets the outputs
            var staged = session.Generator.GenerateIds(ids, generation, options.BatchSize);
            return new GenerateRecipeResult(session.IsMain, staged, null);
        }
        // A prompt without an adapter name uses the only adapter given; with several, it must say which (or gets the base).
        string? fallback = options.Adapters.Count == 1 ? options.Adapters[0].Name : null;
        var requests = options.Prompts.Select((p, i) => new GenerationRequest(ids[i], p.NamesAdapter ? p.Adapter : fallback)).ToList();
        var results = MultiAdapterGenerator.Generate(generator, requests, generation, options.BatchSize);
        return new GenerateRecipeResult(true, results, options.Adapters.Count > 0 ? requests.Select(r => r.Adapter).ToList() : null);
    }

    private static List<int[]> Encode(GenerateRecipeOptions options, ChatFormat? chat, ITextTokenizer tokenizer) =>
        options.Prompts.Select(p => chat is not null
            ? tokenizer.Encode(chat.Render([new("user", p.Text)]), addBos: false)
            : tokenizer.Encode(p.Text, addBos: tokenizer.AddsBosByDefault)).ToList();

    /// <summary>--chat: the model's detected chat format (the same one serve uses); a model without one is refused
    /// rather than given a template it was not trained on.</summary>
    private static ChatFormat ChatFormatOf(string model, ITextTokenizer tokenizer)
    {
        var path = ModelPath.Classify(model);
        return ChatFormat.Detect(tokenizer, path.IsGguf ? null : Path.Combine(path.Checkpoint, ChatTemplateDetector.ConfigFileName))
            ?? throw new UserInputException($"--chat: {model} has no chat template we render (its tokenizer_config.json chat_template is none of {ChatTemplate.Names} with its special tokens, and it has no Llama 3 header tokens); drop --chat and write the prompt in the model's own format");
    }
}
