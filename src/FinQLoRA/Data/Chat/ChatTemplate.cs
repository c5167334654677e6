namespace FinQLoRA.Data.Chat;

/// <summary>
/// Renders a conversation in one of the <see cref="ChatTemplateKind"/>s exactly as the model's published Jinja
/// template renders it (tests/fixtures/chat holds those templates and Jinja2's renders of them): Llama 3
/// (<see cref="Llama3Template"/>), ChatML and Qwen's (<see cref="ChatMlTemplate"/>), Mistral's
/// (<see cref="MistralTemplate"/>), Gemma's (<see cref="GemmaTemplate"/>), Phi's (<see cref="PhiTemplate"/>), or plain
/// <c>role: content</c> lines. A conversation a template raises on (Gemma 2 with a system message, Mistral's or
/// Gemma's turns out of order) is refused the same way.
/// For training (<see cref="Render"/>) the assistant turns, content and end-of-turn token, are marked for the loss;
/// for inference (<see cref="Prompt"/>) the reply is opened after the history (Hugging Face's
/// <c>add_generation_prompt</c>), and <see cref="EndOfTurn"/> is the token that ends it.
/// </summary>
public static class ChatTemplate
{
    // The special tokens of the first two families; detection looks for them in the tokenizer.
    public const string BeginOfText = Llama3Template.BeginOfText, StartHeader = Llama3Template.StartHeader, EndHeader = Llama3Template.EndHeader, EotId = Llama3Template.EotId;
    public const string ImStart = ChatMlTemplate.ImStart, ImEnd = ChatMlTemplate.ImEnd;

    /// <summary>Every name <see cref="Parse"/> reads, for messages and help texts.</summary>
    public const string Names = "llama3, chatml, qwen2, qwen2.5, mistral-v1, mistral-v3, mistral-v3-tekken, ministral, gemma2, gemma3, phi3, phi3.5, phi4-mini or none";

    private static readonly (ChatTemplateKind Kind, string Name)[] Named =
    [
        (ChatTemplateKind.Llama3, "llama3"), (ChatTemplateKind.ChatMl, "chatml"), (ChatTemplateKind.Qwen2, "qwen2"),
        (ChatTemplateKind.Qwen25, "qwen2.5"), (ChatTemplateKind.MistralV1, "mistral-v1"), (ChatTemplateKind.MistralV3, "mistral-v3"),
        (ChatTemplateKind.MistralV3Tekken, "mistral-v3-tekken"), (ChatTemplateKind.Ministral, "ministral"), (ChatTemplateKind.Gemma2, "gemma2"),
        (ChatTemplateKind.Gemma3, "gemma3"), (ChatTemplateKind.Phi3, "phi3"), (ChatTemplateKind.Phi35, "phi3.5"),
        (ChatTemplateKind.Phi4Mini, "phi4-mini"), (ChatTemplateKind.None, "none"),
    ];

    /// <summary>The name written in configs and on the command line (<c>chat_template: gemma3</c>).</summary>
    public static ChatTemplateKind Parse(string value, string source)
    {
        string name = value.ToLowerInvariant() == "llama-3" ? "llama3" : value.ToLowerInvariant();
        foreach (var (kind, n) in Named)
            if (n == name) return kind;
        throw new UserInputException($"{source}: chat_template = {value} is invalid; expected {Names}");
    }

    /// <summary>The name <see cref="Parse"/> reads back (what serve prints).</summary>
    public static string Name(ChatTemplateKind kind) => Named.Single(n => n.Kind == kind).Name;

    /// <summary>The token that ends a turn (the stop token of a reply), or null for <see cref="ChatTemplateKind.None"/>.</summary>
    public static string? EndOfTurn(ChatTemplateKind kind) => kind switch
    {
        ChatTemplateKind.Llama3 => EotId,
        ChatTemplateKind.ChatMl or ChatTemplateKind.Qwen2 or ChatTemplateKind.Qwen25 => ImEnd,
        ChatTemplateKind.Gemma2 or ChatTemplateKind.Gemma3 => GemmaTemplate.EndOfTurn,
        _ when MistralTemplate.Renders(kind) => MistralTemplate.Eos,
        _ when PhiTemplate.Renders(kind) => PhiTemplate.End,
        _ => null,
    };

    /// <summary>The conversation's segments as the template renders it without a generation prompt; the loss
    /// covers every assistant turn.</summary>
    public static List<SftSegment> Render(ChatTemplateKind kind, IReadOnlyList<ChatTurn> messages)
    {
        var w = new SegmentWriter();
        Turns(kind, messages, w);
        if (PhiTemplate.Renders(kind)) w.Frame(PhiTemplate.Closing);
        return w.Segments;
    }

    /// <summary>The text that asks for the next assistant turn after <paramref name="messages"/>: the history, then
    /// the opened reply. Llama 3's, Mistral's and Gemma's texts start with BOS: encode them with addBos=false, or they
    /// get two.</summary>
    public static string Prompt(ChatTemplateKind kind, IReadOnlyList<ChatTurn> messages)
    {
        var w = new SegmentWriter();
        Turns(kind, messages, w);
        return string.Concat(w.Segments.Select(s => s.Text)) + kind switch
        {
            ChatTemplateKind.Llama3 => Llama3Template.GenerationPrompt,
            ChatTemplateKind.ChatMl or ChatTemplateKind.Qwen2 or ChatTemplateKind.Qwen25 => ChatMlTemplate.GenerationPrompt,
            ChatTemplateKind.Gemma2 or ChatTemplateKind.Gemma3 => GemmaTemplate.GenerationPrompt,
            _ when MistralTemplate.Renders(kind) => "", // the model answers straight after [/INST]
            _ when PhiTemplate.Renders(kind) => PhiTemplate.GenerationPrompt(kind),
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

    /// <summary>Refuses roles the template cannot express, for prompts written by people (generate, serve); training
    /// data keeps whatever roles it has. Llama 3 knows system, user, assistant and ipython; ChatML writes any role;
    /// the others know system, user and assistant (Phi-3's template would drop any other message silently).</summary>
    public static void CheckRoles(ChatTemplateKind kind, IEnumerable<ChatTurn> messages)
    {
        if (kind is ChatTemplateKind.ChatMl or ChatTemplateKind.Qwen2 or ChatTemplateKind.Qwen25 or ChatTemplateKind.None) return;
        string[] known = kind == ChatTemplateKind.Llama3 ? ["system", "user", "assistant", "ipython"] : ["system", "user", "assistant"];
        foreach (var m in messages)
            if (!known.Contains(m.Role))
                throw new UserInputException($"chat role '{m.Role}' is not one of {string.Join(", ", known)}");
    }

    /// <summary>The refusal of a conversation whose turns are out of the order a template demands.</summary>
    internal static UserInputException Alternation(string template, string after, int number, string role) =>
        new($"the {template} chat template needs user and assistant messages alternating, starting with user{(after.Length > 0 ? ", " + after : "")} (message {number} is '{role}')");

    private static void Turns(ChatTemplateKind kind, IReadOnlyList<ChatTurn> messages, SegmentWriter w)
    {
        switch (kind)
        {
            case ChatTemplateKind.Llama3: Llama3Template.Turns(messages, w); break;
            case ChatTemplateKind.ChatMl or ChatTemplateKind.Qwen2 or ChatTemplateKind.Qwen25: ChatMlTemplate.Turns(kind, messages, w); break;
            case ChatTemplateKind.Gemma2 or ChatTemplateKind.Gemma3: GemmaTemplate.Turns(kind, messages, w); break;
            case var _ when MistralTemplate.Renders(kind): MistralTemplate.Turns(kind, messages, w); break;
            case var _ when PhiTemplate.Renders(kind): PhiTemplate.Turns(kind, messages, w); break;
            default:
                foreach (var m in messages)
                {
                    w.Frame($"{m.Role}: ");
                    w.Turn(m.Role, m.Content + "\n");
                }
                break;
        }
    }
}
