using FinQLoRA.Data.Tokenization;

namespace FinQLoRA.Data.Chat;

/// <summary>
/// A model's chat template bound to its tokenizer, for prompts people write (<c>generate --chat</c>, serve, the
/// IChatClient): the template <see cref="ChatTemplateDetector"/> finds, and the token that ends a reply.
/// </summary>
public sealed class ChatFormat
{
    private ChatFormat(ChatTemplateKind kind, IReadOnlyList<int> stopIds)
    {
        Kind = kind;
        StopIds = stopIds;
    }

    public ChatTemplateKind Kind { get; }
    /// <summary>The template's <see cref="ChatTemplate.Name"/> (<c>llama3</c>, <c>gemma3</c>…).</summary>
    public string Name => ChatTemplate.Name(Kind);
    /// <summary>Token ids that end an assistant turn besides the tokenizer's EOS ids.</summary>
    public IReadOnlyList<int> StopIds { get; }

    /// <param name="tokenizerConfig">tokenizer_config.json beside the tokenizer, or null where there is none (GGUF)</param>
    /// <returns>the format, or null when the model has none</returns>
    /// <exception cref="UserInputException">the model's template is a variant of a family we do not render</exception>
    public static ChatFormat? Detect(ITextTokenizer tokenizer, string? tokenizerConfig)
    {
        string? template = tokenizerConfig is not null && File.Exists(tokenizerConfig) ? ChatTemplateDetector.ReadTemplate(tokenizerConfig) : null;
        if (ChatTemplateDetector.Detect(template, tokenizer.TokenToId, tokenizerConfig ?? ChatTemplateDetector.ConfigFileName) is not { } kind) return null;
        // the rule has checked that the end-of-turn token exists
        return new ChatFormat(kind, [tokenizer.TokenToId(ChatTemplate.EndOfTurn(kind)!)!.Value]);
    }

    /// <summary>The prompt text for the messages with the assistant turn opened, roles checked. Encode it without
    /// adding BOS (Llama 3's, Mistral's and Gemma's texts start with it; ChatML and Phi models use none).</summary>
    public string Render(IReadOnlyList<ChatTurn> messages) => ChatTemplate.RequestPrompt(Kind, messages);

    /// <summary>The conversation as the template writes it without opening an assistant turn (Hugging Face's
    /// <c>add_generation_prompt=False</c>), roles checked; with <paramref name="addGenerationPrompt"/>, <see cref="Render(IReadOnlyList{ChatTurn})"/>.</summary>
    public string Render(IReadOnlyList<ChatTurn> messages, bool addGenerationPrompt)
    {
        if (addGenerationPrompt) return Render(messages);
        ChatTemplate.CheckRoles(Kind, messages);
        return string.Concat(ChatTemplate.Render(Kind, messages).Select(s => s.Text));
    }
}
