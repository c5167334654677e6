namespace FinQLoRA.Data.Chat;

/// <summary>
/// Renders a conversation in one of the <see cref="ChatTemplateKind"/>s, as their official formats write it:
/// <list type="bullet">
/// <item>Llama 3: <c>&lt;|begin_of_text|&gt;</c>, then per message <c>&lt;|start_header_id|&gt;role&lt;|end_header_id|&gt;\n\ncontent&lt;|eot_id|&gt;</c>
/// (content trimmed, as Meta's template does);</item>
/// <item>ChatML: per message <c>&lt;|im_start|&gt;role\ncontent&lt;|im_end|&gt;\n</c>;</item>
/// <item>none: per message <c>role: content\n</c>.</item>
/// </list>
/// For training (<see cref="Render"/>) the assistant turns, content and end-of-turn token, are marked for the loss;
/// for inference (<see cref="Prompt"/>) the assistant turn is opened after the history.
/// </summary>
public static class ChatTemplate
{
    // The special tokens of the two families; detection looks for them in the tokenizer.
    public const string BeginOfText = "<|begin_of_text|>", StartHeader = "<|start_header_id|>", EndHeader = "<|end_header_id|>", EotId = "<|eot_id|>";
    public const string ImStart = "<|im_start|>", ImEnd = "<|im_end|>";

    /// <summary>The name written in configs and on the command line (<c>chat_template: llama3|chatml|none</c>).</summary>
    public static ChatTemplateKind Parse(string value, string source) => value.ToLowerInvariant() switch
    {
        "llama3" or "llama-3" => ChatTemplateKind.Llama3,
        "chatml" => ChatTemplateKind.ChatMl,
        "none" => ChatTemplateKind.None,
        _ => throw new UserInputException($"{source}: chat_template = {value} is invalid; expected llama3, chatml or none"),
    };

    /// <summary>The name <see cref="Parse"/> reads back (what serve prints).</summary>
    public static string Name(ChatTemplateKind kind) => kind switch
    {
        ChatTemplateKind.Llama3 => "llama3",
        ChatTemplateKind.ChatMl => "chatml",
        _ => "none",
    };

    /// <summary>The token that ends a turn (the stop token of a reply), or null for <see cref="ChatTemplateKind.None"/>.</summary>
    public static string? EndOfTurn(ChatTemplateKind kind) => kind switch
    {
        ChatTemplateKind.Llama3 => EotId,
        ChatTemplateKind.ChatMl => ImEnd,
        _ => null,
    };

    /// <summary>The conversation's segments; the loss covers every assistant turn.</summary>
    public static List<SftSegment> Render(ChatTemplateKind kind, IReadOnlyList<ChatTurn> messages)
    {
        var segments = new List<SftSegment>();
        void Frame(string text) => segments.Add(new SftSegment(text, false));
        if (kind == ChatTemplateKind.Llama3) Frame(BeginOfText);
        foreach (var m in messages)
        {
            bool trained = m.Role == "assistant";
            switch (kind)
            {
                case ChatTemplateKind.Llama3:
                    Frame($"{StartHeader}{m.Role}{EndHeader}\n\n");
                    segments.Add(new SftSegment(m.Content.Trim() + EotId, trained));
                    break;
                case ChatTemplateKind.ChatMl:
                    Frame($"{ImStart}{m.Role}\n");
                    segments.Add(new SftSegment(m.Content + ImEnd, trained));
                    Frame("\n");
                    break;
                default:
                    Frame($"{m.Role}: ");
                    segments.Add(new SftSegment(m.Content + "\n", trained));
                    break;
            }
        }
        return segments;
    }

    /// <summary>The text that asks for the next assistant turn after <paramref name="messages"/>: the history, then the
    /// opened assistant turn (Hugging Face's <c>add_generation_prompt</c>). Llama 3's text starts with BOS: encode it
    /// with addBos=false, or it gets two.</summary>
    public static string Prompt(ChatTemplateKind kind, IReadOnlyList<ChatTurn> messages)
    {
        string history = string.Concat(Render(kind, messages).Select(s => s.Text));
        return history + kind switch
        {
            ChatTemplateKind.Llama3 => $"{StartHeader}assistant{EndHeader}\n\n",
            ChatTemplateKind.ChatMl => $"{ImStart}assistant\n",
            _ => "assistant: ",
        };
    }

    /// <summary><see cref="Prompt"/> for messages people wrote (generate, serve, the IChatClient): the roles are
    /// checked first.</summary>
    public static string RequestPrompt(ChatTemplateKind kind, IReadOnlyList<ChatTurn> messages)
    {
        CheckRoles(kind, messages);
        return Prompt(kind, messages);
    }

    /// <summary>Refuses roles the template cannot express (Llama 3 knows system, user, assistant and ipython), for
    /// prompts written by people (generate, serve); training data keeps whatever roles it has.</summary>
    public static void CheckRoles(ChatTemplateKind kind, IEnumerable<ChatTurn> messages)
    {
        if (kind != ChatTemplateKind.Llama3) return;
        foreach (var m in messages)
            if (m.Role is not ("system" or "user" or "assistant" or "ipython"))
                throw new UserInputException($"chat role '{m.Role}' is not one of system, user, assistant, ipython");
    }
}
