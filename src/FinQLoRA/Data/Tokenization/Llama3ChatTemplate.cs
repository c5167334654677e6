using FinQLoRA.Data.Formats;

namespace FinQLoRA.Data.Tokenization;

/// <summary>
/// Llama 3's chat format for a prompt a person wrote (<c>generate --chat</c>): <c>&lt;|begin_of_text|&gt;</c>, then for
/// each message <c>&lt;|start_header_id|&gt;role&lt;|end_header_id|&gt;\n\ncontent&lt;|eot_id|&gt;</c>, then the assistant
/// header when a reply is wanted. Rendered by <see cref="ChatTemplate"/>, with the roles checked. The text already
/// starts with BOS: encode it with addBos=false, or it gets two.
/// </summary>
public static class Llama3ChatTemplate
{
    public static string Format(IReadOnlyList<ChatTemplate.Message> messages, bool addGenerationPrompt = true)
    {
        ChatTemplate.CheckRoles(ChatTemplateKind.Llama3, messages);
        return addGenerationPrompt
            ? ChatTemplate.Prompt(ChatTemplateKind.Llama3, messages)
            : string.Concat(ChatTemplate.Render(ChatTemplateKind.Llama3, messages).Select(s => s.Text));
    }
}
