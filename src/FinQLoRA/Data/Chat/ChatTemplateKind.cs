namespace FinQLoRA.Data.Chat;

/// <summary>The chat templates we render ourselves (we do not run Jinja): Llama 3's header format, ChatML, or plain
/// <c>role: content</c> lines for models without one.</summary>
public enum ChatTemplateKind { Llama3, ChatMl, None }
