namespace FinQLoRA.Data.Chat;

/// <summary>The chat templates we render ourselves (we do not run Jinja), each exactly as its model's published
/// template renders a conversation of system, user and assistant messages. A family's variants are separate kinds
/// because their texts differ (spaces, trimming, where the system prompt goes); <see cref="ChatTemplate.Name"/> gives
/// the name a <c>chat_template</c> setting uses.</summary>
public enum ChatTemplateKind
{
    /// <summary>Llama 3's header format.</summary>
    Llama3,
    /// <summary>ChatML as written (Qwen3, Qwen2.5 with a system message, most ChatML fine-tunes).</summary>
    ChatMl,
    /// <summary>ChatML that adds "You are a helpful assistant." when the first message is not a system one (the
    /// template of Qwen2.5 base models, and of Qwen1.5/Qwen2 chat models).</summary>
    Qwen2,
    /// <summary>ChatML that adds "You are Qwen, created by Alibaba Cloud. You are a helpful assistant." when the first
    /// message is not a system one (Qwen2.5 instruct models).</summary>
    Qwen25,
    /// <summary><c>&lt;s&gt; [INST] user [/INST] reply&lt;/s&gt;</c>, the system prompt before the first user message
    /// (Mistral-7B-Instruct-v0.1/v0.2, tokenizer v1: [INST] is text).</summary>
    MistralV1,
    /// <summary><c>&lt;s&gt;[INST] user[/INST] reply&lt;/s&gt;</c>, replies trimmed, the system prompt before the user
    /// message that ends the conversation (Mistral-7B-Instruct-v0.3, Mistral-Large-2407, Mistral-Small-2409).</summary>
    MistralV3,
    /// <summary><c>&lt;s&gt;[INST]user[/INST]reply&lt;/s&gt;</c>, the system prompt as in v3 (Mistral-Nemo-Instruct-2407).</summary>
    MistralV3Tekken,
    /// <summary>Tekken's <c>[INST]user[/INST]</c> with v3's replies (<c> reply&lt;/s&gt;</c>, trimmed): the template
    /// Ministral-8B-Instruct-2410's tokenizer_config.json is reported to carry.</summary>
    Ministral,
    /// <summary><c>&lt;bos&gt;&lt;start_of_turn&gt;user\n…&lt;end_of_turn&gt;\n&lt;start_of_turn&gt;model\n…</c>, no
    /// system role (Gemma and Gemma 2).</summary>
    Gemma2,
    /// <summary>Gemma 2's turns, the system prompt and a blank line before the first user message (Gemma 3).</summary>
    Gemma3,
    /// <summary><c>&lt;|user|&gt;\n…&lt;|end|&gt;\n</c> per message (Phi-3-mini).</summary>
    Phi3,
    /// <summary>Phi-3's, an empty system message left out (Phi-3.5-mini).</summary>
    Phi35,
    /// <summary><c>&lt;|user|&gt;…&lt;|end|&gt;</c> per message, no newlines (Phi-4-mini).</summary>
    Phi4Mini,
    /// <summary>Plain <c>role: content</c> lines, for models without a template.</summary>
    None,
}
