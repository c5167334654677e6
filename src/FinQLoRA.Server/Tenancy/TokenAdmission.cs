using FinQLoRA.Data.Chat;
using FinQLoRA.Serving;
using FinQLoRA.Serving.Decisions;
using Microsoft.AspNetCore.Http;

namespace FinQLoRA.Server.Tenancy;

/// <summary>
/// The token estimate a request is admitted by under its key's <c>tokens_per_minute</c>, taken just before it is
/// submitted (after every 400 the request can earn, so that a refused request costs its key nothing): what it may make
/// the server compute at most. Generation rows: prompt tokens plus max_tokens, for every choice. Decisions: the
/// input's tokens once plus each question's text with its options (the input is computed once, the prefix cache serves
/// it to every question).
/// </summary>
internal static class TokenAdmission
{
    public static void Admit(HttpContext context, ServerState state, IEnumerable<EngineRequest> rows) =>
        state.Limits.AdmitTokens(Tenant.Of(context), rows.Sum(r => (long)r.PromptIds.Length + r.Sampling.MaxTokens));

    public static void AdmitDecisions(HttpContext context, ServerState state, IReadOnlyList<ChatTurn> input, IReadOnlyList<DecisionQuestion> questions)
    {
        var key = Tenant.Of(context);
        if (!state.Limits.LimitsTokens(key)) return; // the estimate costs a tokenization; only a limited key needs it
        var tokenizer = state.Engine.Tokenizer;
        long tokens = tokenizer.Encode(string.Join("\n", input.Select(m => m.Content)), addBos: false).Length
            + questions.Sum(q => (long)tokenizer.Encode(DecisionPrompt.Context(null, [], q), addBos: false).Length);
        state.Limits.AdmitTokens(key, tokens);
    }
}
