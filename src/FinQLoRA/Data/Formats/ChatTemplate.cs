using System.Text.Json.Nodes;

namespace FinQLoRA.Data.Formats;

/// <summary>
/// Renders a conversation as the segments a model was trained to read, with the assistant turns (their content and
/// end-of-turn token) marked for the loss: Llama 3's header format or ChatML. Picked from tokenizer_config.json's
/// <c>chat_template</c> when it is one of these, or chosen with <c>chat_template: llama3|chatml|none</c>.
/// </summary>
public enum ChatTemplateKind { Llama3, ChatMl, None }

public static class ChatTemplate
{
    public sealed record Message(string Role, string Content);

    public static ChatTemplateKind Parse(string value, string source) => value.ToLowerInvariant() switch
    {
        "llama3" or "llama-3" => ChatTemplateKind.Llama3,
        "chatml" => ChatTemplateKind.ChatMl,
        "none" => ChatTemplateKind.None,
        _ => throw new UserInputException($"{source}: chat_template = {value} is invalid; expected llama3, chatml or none"),
    };

    /// <summary>The template a model folder's tokenizer_config.json names, recognised by its markers.</summary>
    public static ChatTemplateKind FromModel(string modelPath)
    {
        string file = Path.Combine(modelPath, "tokenizer_config.json");
        if (!File.Exists(file))
            throw UserInputException.About($"{modelPath}: no tokenizer_config.json to take a chat template from; choose one with {new ConfigField("chat_template")} llama3|chatml|none");
        string? template = (JsonNode.Parse(File.ReadAllText(file)) as JsonObject)?["chat_template"] switch
        {
            JsonValue v => v.GetValue<string>(),
            JsonArray a => string.Concat(a.Select(t => t?["template"]?.GetValue<string>())),
            _ => null,
        };
        if (template == null)
            throw UserInputException.About($"{file}: has no chat_template; choose one with {new ConfigField("chat_template")} llama3|chatml|none");
        if (template.Contains("<|start_header_id|>")) return ChatTemplateKind.Llama3;
        if (template.Contains("<|im_start|>")) return ChatTemplateKind.ChatMl;
        throw UserInputException.About($"{file}: its chat_template is neither Llama 3's nor ChatML ({template[..Math.Min(60, template.Length)].ReplaceLineEndings(" ")}…); choose one with {new ConfigField("chat_template")} llama3|chatml|none");
    }

    /// <summary>The conversation's segments; the loss covers every assistant turn.</summary>
    public static List<SftSegment> Render(ChatTemplateKind kind, IReadOnlyList<Message> messages)
    {
        var segments = new List<SftSegment>();
        void Frame(string text) => segments.Add(new SftSegment(text, false));
        if (kind == ChatTemplateKind.Llama3) Frame("<|begin_of_text|>");
        foreach (var m in messages)
        {
            bool trained = m.Role == "assistant";
            switch (kind)
            {
                case ChatTemplateKind.Llama3:
                    Frame($"<|start_header_id|>{m.Role}<|end_header_id|>\n\n");
                    segments.Add(new SftSegment(m.Content.Trim() + "<|eot_id|>", trained));
                    break;
                case ChatTemplateKind.ChatMl:
                    Frame($"<|im_start|>{m.Role}\n");
                    segments.Add(new SftSegment(m.Content + "<|im_end|>", trained));
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

    /// <summary>Refuses roles the template cannot express (Llama 3 knows system, user, assistant and ipython), for
    /// prompts written by people (generate, serve); training data keeps whatever roles it has.</summary>
    public static void CheckRoles(ChatTemplateKind kind, IEnumerable<Message> messages)
    {
        if (kind != ChatTemplateKind.Llama3) return;
        foreach (var m in messages)
            if (m.Role is not ("system" or "user" or "assistant" or "ipython"))
                throw new UserInputException($"chat role '{m.Role}' is not one of system, user, assistant, ipython");
    }

    /// <summary>The text that asks for the next assistant turn after <paramref name="messages"/> (for evaluation).</summary>
    public static string Prompt(ChatTemplateKind kind, IReadOnlyList<Message> messages)
    {
        string history = string.Concat(Render(kind, messages).Select(s => s.Text));
        return history + kind switch
        {
            ChatTemplateKind.Llama3 => "<|start_header_id|>assistant<|end_header_id|>\n\n",
            ChatTemplateKind.ChatMl => "<|im_start|>assistant\n",
            _ => "assistant: ",
        };
    }
}
