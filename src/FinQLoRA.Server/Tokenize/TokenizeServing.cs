using System.Text.Json;
using FinQLoRA.Server.ChatCompletions;
using FinQLoRA.Server.Common;
using Microsoft.AspNetCore.Http;

namespace FinQLoRA.Server.Tokenize;

/// <summary>The logic of vLLM's <c>/tokenize</c> and <c>/detokenize</c>: the ids a prompt or a conversation becomes, as
/// /v1/completions and /v1/chat/completions would count them, and the text ids decode to.</summary>
internal static class TokenizeServing
{
    public static TokenizeResponse Tokenize(HttpContext context, ServerState state, TokenizeRequest request)
    {
        CheckModel(context, state, request.Model);
        var tokenizer = state.Engine.Tokenizer;
        int[] ids;
        if (request.Messages is not null)
        {
            if (request.Prompt is not null)
                throw new ApiException(400, "give either 'prompt' or 'messages', not both", "prompt");
            if (request.ContinueFinalMessage == true && request.AddGenerationPrompt == true)
                throw new ApiException(400, "cannot set both 'continue_final_message' and 'add_generation_prompt' to true", "continue_final_message");
            if (request.ContinueFinalMessage == true)
                throw new ApiException(400, "'continue_final_message' is not supported: the chat templates here close every message", "continue_final_message", "unsupported_parameter");
            RequestFields.Unsupported(request.ChatTemplate, "chat_template", _ => false);
            RequestFields.Unsupported(request.ChatTemplateKwargs, "chat_template_kwargs", v => v.ValueKind == JsonValueKind.Object && !v.EnumerateObject().Any());
            RequestFields.Unsupported(request.Tools, "tools", v => v.ValueKind == JsonValueKind.Array && v.GetArrayLength() == 0);
            var messages = ChatCompletionsServing.ReadMessages(request.Messages);
            var format = ChatCompletionsServing.FormatOf(state);
            string text;
            try { text = format.Render(messages, request.AddGenerationPrompt ?? true); }
            catch (UserInputException e) { throw new ApiException(400, e.Message, "messages"); } // the template's own rules
            // the template writes BOS itself; add_special_tokens (default false for chat) adds another, as in vLLM
            ids = tokenizer.Encode(text, addBos: (request.AddSpecialTokens ?? false) && tokenizer.AddsBosByDefault);
        }
        else
        {
            string prompt = request.Prompt ?? throw new ApiException(400, "'prompt' (a string) or 'messages' is required", "prompt", "missing_required_parameter");
            ids = tokenizer.Encode(prompt, addBos: (request.AddSpecialTokens ?? true) && tokenizer.AddsBosByDefault);
        }
        var strs = request.ReturnTokenStrs == true ? TokenStrings.Of(tokenizer, ids) : null;
        return new TokenizeResponse(ids.Length, state.Engine.Options.MaxModelLen, ids, strs);
    }

    public static DetokenizeResponse Detokenize(HttpContext context, ServerState state, DetokenizeRequest request)
    {
        CheckModel(context, state, request.Model);
        var tokenizer = state.Engine.Tokenizer;
        if (RequestFields.Present(request.Tokens) is not { ValueKind: JsonValueKind.Array } list)
            throw request.Tokens is null
                ? new ApiException(400, "'tokens' is required", "tokens", "missing_required_parameter")
                : RequestJson.Wrong("tokens", "a list of token ids");
        var ids = new List<int>(list.GetArrayLength());
        foreach (var e in list.EnumerateArray())
        {
            if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt64(out long id)) throw RequestJson.Wrong("tokens", "a list of integer token ids");
            if (id < 0 || id >= tokenizer.VocabSize)
                throw new ApiException(400, $"'tokens' holds {id}, outside the vocabulary [0, {tokenizer.VocabSize})", "tokens");
            ids.Add((int)id);
        }
        return new DetokenizeResponse(Detokenizer.Decode(tokenizer, ids));
    }

    /// <summary>vLLM's model field is optional here; a name that is given must be served (404 otherwise).</summary>
    private static void CheckModel(HttpContext context, ServerState state, string? model)
    {
        if (model is null) return;
        state.Models.Resolve(model);
        context.Items[ServerState.ModelItem] = model; // only served names become metric labels
    }
}
