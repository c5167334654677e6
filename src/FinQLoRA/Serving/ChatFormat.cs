using System.Text.Json.Nodes;
using FinQLoRA.Data.Formats;
using FinQLoRA.Data.Tokenization;

namespace FinQLoRA.Serving;

/// <summary>
/// How chat messages become a prompt for this model. We do not run Jinja: the two families in use are recognised —
/// ChatML (<c>&lt;|im_start|&gt;role\n…&lt;|im_end|&gt;</c>) when tokenizer_config.json's chat_template uses it, and
/// Llama 3's header format when the tokenizer has its special tokens. A model with neither has no chat format, and
/// chat requests to it are refused rather than answered from an invented template.
/// </summary>
public sealed class ChatFormat
{
    private readonly ChatTemplateKind _kind;

    private ChatFormat(string name, ChatTemplateKind kind, IReadOnlyList<int> stopIds)
    {
        Name = name;
        _kind = kind;
        StopIds = stopIds;
    }

    /// <summary><c>llama3</c> or <c>chatml</c>.</summary>
    public string Name { get; }
    /// <summary>Token ids that end an assistant turn besides the tokenizer's EOS ids.</summary>
    public IReadOnlyList<int> StopIds { get; }

    /// <param name="tokenizerConfig">tokenizer_config.json beside the tokenizer, or null where there is none (GGUF)</param>
    /// <returns>the format, or null when the model has none</returns>
    public static ChatFormat? Detect(ITextTokenizer tokenizer, string? tokenizerConfig)
    {
        string? template = null;
        if (tokenizerConfig is not null && File.Exists(tokenizerConfig))
        {
            try { template = (JsonNode.Parse(File.ReadAllText(tokenizerConfig)) as JsonObject)?["chat_template"] is JsonValue v && v.TryGetValue(out string? t) ? t : null; }
            catch (System.Text.Json.JsonException) { template = null; }
        }
        if (template?.Contains("<|im_start|>", StringComparison.Ordinal) == true
            && tokenizer.TokenToId("<|im_start|>") is not null && tokenizer.TokenToId("<|im_end|>") is { } imEnd)
            return new ChatFormat("chatml", ChatTemplateKind.ChatMl, [imEnd]);
        if (tokenizer.TokenToId("<|start_header_id|>") is not null && tokenizer.TokenToId("<|end_header_id|>") is not null
            && tokenizer.TokenToId("<|eot_id|>") is { } eot)
            return new ChatFormat("llama3", ChatTemplateKind.Llama3, [eot]);
        return null;
    }

    /// <summary>The prompt text for the messages with the assistant turn opened. Encode it without adding BOS (the
    /// Llama 3 text starts with it; ChatML models use none).</summary>
    public string Render(IReadOnlyList<ChatTurn> messages)
    {
        var turns = messages.Select(m => new ChatTemplate.Message(m.Role, m.Content)).ToList();
        ChatTemplate.CheckRoles(_kind, turns);
        return ChatTemplate.Prompt(_kind, turns);
    }
}
