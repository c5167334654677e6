using System.Text.Json;
using FinQLoRA.Server.ChatCompletions;

namespace FinQLoRA.Server.Tokenize;

// vLLM's POST /tokenize and POST /detokenize, field for field as vLLM names them. vLLM's tokenize request is a union:
// with "messages" it is the chat form (the chat template applied), else the completion form with "prompt".

/// <summary><c>POST /tokenize</c>. Completion form: <c>prompt</c>, <c>add_special_tokens</c> (default true: BOS where
/// the tokenizer adds it, as a completion prompt gets it). Chat form: <c>messages</c>, <c>add_generation_prompt</c>
/// (default true), <c>continue_final_message</c>, <c>add_special_tokens</c> (default false: the template writes its own).
/// Both: <c>model</c> (optional; when given, a served name), <c>return_token_strs</c>.</summary>
internal sealed record TokenizeRequest
{
    public string? Model { get; init; }
    public string? Prompt { get; init; }
    public IReadOnlyList<ChatMessageParam?>? Messages { get; init; }
    public bool? AddSpecialTokens { get; init; }
    public bool? AddGenerationPrompt { get; init; }
    /// <summary>Accepted only false: the templates here always close the last message.</summary>
    public bool? ContinueFinalMessage { get; init; }
    public bool? ReturnTokenStrs { get; init; }
    /// <summary>A Jinja template: refused (we render the model's own template, not Jinja).</summary>
    public JsonElement? ChatTemplate { get; init; }
    /// <summary>Refused unless empty, as for chat completions.</summary>
    public JsonElement? ChatTemplateKwargs { get; init; }
    /// <summary>Accepted only empty, as for chat completions.</summary>
    public JsonElement? Tools { get; init; }
}

/// <summary>The ids, their count, the server's context, and with <c>return_token_strs</c> each id's vocabulary entry
/// (null otherwise, as vLLM writes it).</summary>
internal sealed record TokenizeResponse(int Count, int MaxModelLen, IReadOnlyList<int> Tokens, IReadOnlyList<string>? TokenStrs);

/// <summary><c>POST /detokenize</c>: <c>tokens</c> (a list of ids), <c>model</c> optional.</summary>
internal sealed record DetokenizeRequest(string? Model, JsonElement? Tokens);

/// <summary>The ids decoded, special tokens written out (Hugging Face's decode, as vLLM calls it).</summary>
internal sealed record DetokenizeResponse(string Prompt);
