using System.Text.Json;
using FinQLoRA.Server.Audit;
using FinQLoRA.Server.Common;
using FinQLoRA.Server.Tenancy;
using FinQLoRA.Serving.Decisions;
using Microsoft.AspNetCore.Http;

namespace FinQLoRA.Server.Decisions;

/// <summary>The logic of <c>POST /v1/decisions</c>: the request read and checked, the questions answered by
/// <see cref="EngineDecisions"/> on the served base or adapter (the chat template where the model has one, the plain
/// rendering where it has none), the answers in OpenAI's shapes.</summary>
internal static class DecisionsServing
{
    public static async Task<IResult> CreateAsync(HttpContext context, ServerState state, DecisionsRequest request)
    {
        var (model, adapter) = ServedModel.Of(context, state, request.Model);
        var input = DecisionsRequestReader.Input(request.Input);
        var questions = DecisionsRequestReader.Questions(request.Questions);
        // A template we cannot render is refused rather than replaced by the plain rendering the model never saw.
        if (state.Options.ChatFormat is null && state.Options.ChatFormatRefusal is { } refusal)
            throw new ApiException(400, $"model '{state.Models.BaseName}' has a chat template we do not render: {refusal}", "model", "no_chat_template");
        TokenAdmission.AdmitDecisions(context, state, input, questions);
        var decisions = new EngineDecisions(state.Engine, state.Options.ChatFormat);
        var decisionRequest = new DecisionRequest(input, questions) { Adapter = adapter, CachePartition = CachePartition.Of(context, state, request.PromptCacheKey), Priority = PriorityField.Read(request.Priority, state) };
        DecisionResult result;
        try { result = await decisions.DecideAsync(decisionRequest, context.RequestAborted).ConfigureAwait(false); }
        catch (UserInputException e) { throw new ApiException(400, e.Message, "input"); } // the template's own rules (roles, their order)
        AuditEntry.Of(context)?.Decided(result.InputTokens, request.Input?.GetRawText() ?? "");
        var usage = new DecisionUsage(result.InputTokens, new DecisionInputTokensDetails(result.CachedTokens), 0, new DecisionOutputTokensDetails(0), result.InputTokens);
        return ApiResults.Json(new DecisionsResponse(model, result.Answers.Select(Wire).ToList(), usage));
    }

    private static DecisionAnswerObject Wire(DecisionAnswer answer) => answer switch
    {
        PredicateAnswer a => new PredicateAnswerObject(a.Name, a.Probability),
        ChoiceAnswer a => new ChoiceAnswerObject(a.Name, Json(a.Choice), a.Confidence,
            a.Probabilities.Select(p => new ChoiceProbabilityObject(Json(p.Value), p.Probability)).ToList()),
        ScoreAnswer a => new ScoreAnswerObject(a.Name, a.Score, a.Confidence,
            a.Probabilities.Select(p => new ScoreProbabilityObject(p.Label, p.Value, p.Probability)).ToList()),
        RefusalAnswer a => new RefusalAnswerObject(a.Name),
        _ => throw new ArgumentOutOfRangeException(nameof(answer)),
    };

    /// <summary>A choice value with its request's JSON type: a string stays a string, a boolean a boolean.</summary>
    private static JsonElement Json(DecisionValue value) =>
        value.Flag is { } b ? JsonSerializer.SerializeToElement(b, OpenAiJsonContext.Default.Boolean)
        : JsonSerializer.SerializeToElement(value.Text!, OpenAiJsonContext.Default.String);
}
