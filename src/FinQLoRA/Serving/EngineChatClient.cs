using System.Runtime.CompilerServices;
using FinQLoRA.Data.Chat;
using FinQLoRA.Inference;
using FinQLoRA.Inference.Constraints;
using Microsoft.Extensions.AI;

namespace FinQLoRA.Serving;

/// <summary>
/// Microsoft.Extensions.AI's <see cref="IChatClient"/> over the serving engine, in process: a .NET application uses
/// its fine-tuned model (base or any loaded adapter, picked by <see cref="ChatOptions.ModelId"/>) through the same
/// abstraction it would use for OpenAI, batched with every other caller of the engine. Only text content is used.
/// <see cref="ChatOptions.ResponseFormat"/> JSON (with or without a schema) constrains the answer as the server's
/// <c>response_format</c> does.
/// </summary>
/// <param name="engine">the engine every request goes to</param>
/// <param name="format">how the messages become a prompt, and the tokens that end an answer</param>
/// <param name="baseModelId">the id that selects the base; any other <see cref="ChatOptions.ModelId"/> names an adapter</param>
public sealed class EngineChatClient(ServingEngine engine, ChatFormat format, string baseModelId) : IChatClient
{
    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var (request, model) = Request(messages, options, cancellationToken);
        var result = await EngineCompletion.ReadAsync(engine.Submit(request), cancellationToken).ConfigureAwait(false);
        return new ChatResponse(new ChatMessage(ChatRole.Assistant, result.Text))
        {
            ModelId = model,
            FinishReason = Finish(result.FinishReason),
            Usage = Usage(result.PromptTokens, result.CompletionTokens, result.CachedTokens),
        };
    }

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var (request, model) = Request(messages, options, cancellationToken);
        string id = Guid.NewGuid().ToString("N");
        await foreach (var e in engine.Submit(request).ReadAllAsync(cancellationToken).ConfigureAwait(false))
        {
            if (e.TextDelta.Length > 0)
                yield return new ChatResponseUpdate(ChatRole.Assistant, e.TextDelta) { ModelId = model, ResponseId = id };
            if (e.IsFinal)
            {
                yield return new ChatResponseUpdate(ChatRole.Assistant, [new UsageContent(Usage(e.PromptTokens, e.CompletionTokens, e.CachedTokens))])
                {
                    ModelId = model, ResponseId = id, FinishReason = Finish(e.FinishReason!),
                };
                yield break;
            }
        }
        throw new OperationCanceledException("the request ended before it finished (cancelled or the engine stopped)");
    }

    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is not null ? null
        : serviceType == typeof(ChatClientMetadata) ? new ChatClientMetadata("finqlora", null, baseModelId)
        : serviceType.IsInstanceOfType(this) ? this
        : serviceType == typeof(ServingEngine) ? engine
        : null;

    /// <summary>The engine belongs to whoever made it; nothing to free here.</summary>
    public void Dispose() { }

    private (EngineRequest Request, string Model) Request(IEnumerable<ChatMessage> messages, ChatOptions? options, CancellationToken cancellation)
    {
        var turns = messages.Select(m => new ChatTurn(m.Role.Value, m.Text)).ToList();
        foreach (var t in turns)
            if (t.Role is not ("system" or "user" or "assistant"))
                throw new ServingException(ServingErrorKind.InvalidRequest, $"chat role '{t.Role}' is not one of system, user, assistant", "messages");
        string model = options?.ModelId ?? baseModelId;
        string? adapter = model == baseModelId ? null : model;
        string prompt;
        try { prompt = format.Render(turns); }
        catch (UserInputException e) { throw new ServingException(ServingErrorKind.InvalidRequest, e.Message, "messages"); } // the template's own rules
        var ids = engine.Tokenizer.Encode(prompt, addBos: false);
        var sampling = new SamplingParams
        {
            MaxTokens = options?.MaxOutputTokens ?? Math.Max(1, engine.Options.MaxModelLen - ids.Length),
            Temperature = options?.Temperature ?? 1.0,
            TopP = options?.TopP ?? 1.0,
            TopK = options?.TopK ?? 0,
            Seed = options?.Seed ?? Random.Shared.NextInt64(),
            Stop = options?.StopSequences?.ToList() ?? [],
            StopTokenIds = format.StopIds,
            Constraint = Constraint(options?.ResponseFormat),
        };
        return (new EngineRequest(ids, adapter, sampling, cancellation), model);
    }

    /// <summary>JSON with a schema: that schema; JSON without one: any object; text or none: free.</summary>
    private CompiledConstraint? Constraint(ChatResponseFormat? responseFormat)
    {
        if (responseFormat is not ChatResponseFormatJson json) return null;
        var spec = json.Schema is { } schema ? ConstraintSpec.JsonSchema(schema) : ConstraintSpec.JsonObject();
        try { return ConstraintCache.For(engine.Tokenizer).Get(spec, format.StopIds); }
        catch (ConstraintException e) { throw new ServingException(ServingErrorKind.InvalidRequest, e.Message, "response_format"); }
    }

    private static ChatFinishReason Finish(FinishReason reason) => reason.Value == FinishReason.LengthValue ? ChatFinishReason.Length : ChatFinishReason.Stop;

    private static UsageDetails Usage(int prompt, int completion, int cached) =>
        new() { InputTokenCount = prompt, OutputTokenCount = completion, TotalTokenCount = prompt + completion, CachedInputTokenCount = cached };
}
