using System.Text;

namespace FinQLoRA.Data.Tokenization;

/// <summary>
/// Llama 3's chat format: <c>&lt;|begin_of_text|&gt;</c>, then for each message
/// <c>&lt;|start_header_id|&gt;role&lt;|end_header_id|&gt;\n\ncontent&lt;|eot_id|&gt;</c>, then the assistant header when a reply
/// is wanted. The text already starts with BOS: encode it with addBos=false, or it gets two.
/// </summary>
public static class Llama3ChatTemplate
{
    public sealed record Message(string Role, string Content);

    public static string Format(IEnumerable<Message> messages, bool addGenerationPrompt = true)
    {
        var sb = new StringBuilder("<|begin_of_text|>");
        foreach (var m in messages)
        {
            if (m.Role is not ("system" or "user" or "assistant" or "ipython"))
                throw new UserInputException($"chat role '{m.Role}' is not one of system, user, assistant, ipython");
            sb.Append("<|start_header_id|>").Append(m.Role).Append("<|end_header_id|>\n\n").Append(m.Content.Trim()).Append("<|eot_id|>");
        }
        if (addGenerationPrompt) sb.Append("<|start_header_id|>assistant<|end_header_id|>\n\n");
        return sb.ToString();
    }
}
