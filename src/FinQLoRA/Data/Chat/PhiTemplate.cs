namespace FinQLoRA.Data.Chat;

/// <summary>
/// Microsoft's Phi formats: per message <c>&lt;|role|&gt;</c>, content and <c>&lt;|end|&gt;</c>, a reply opened with
/// <c>&lt;|assistant|&gt;</c>, and the conversation closed with EOS (<c>&lt;|endoftext|&gt;</c>) when no reply is
/// asked for (training renders). Phi-3-mini (microsoft/Phi-3-mini-4k-instruct) puts a newline after the role tag and
/// after <c>&lt;|end|&gt;</c> and skips roles other than system, user and assistant; Phi-3.5-mini also skips an empty
/// system message; Phi-4-mini (microsoft/Phi-4-mini-instruct) writes no newlines. None trims.
/// </summary>
internal static class PhiTemplate
{
    public const string End = "<|end|>", User = "<|user|>", Assistant = "<|assistant|>", EndOfText = "<|endoftext|>";

    public static bool Renders(ChatTemplateKind kind) => kind is ChatTemplateKind.Phi3 or ChatTemplateKind.Phi35 or ChatTemplateKind.Phi4Mini;

    private static string Newline(ChatTemplateKind kind) => kind == ChatTemplateKind.Phi4Mini ? "" : "\n";

    public static string GenerationPrompt(ChatTemplateKind kind) => Assistant + Newline(kind);

    /// <summary>What the template writes after the last message when no reply is asked for.</summary>
    public static string Closing => EndOfText;

    public static void Turns(ChatTemplateKind kind, IReadOnlyList<ChatTurn> messages, SegmentWriter w)
    {
        string nl = Newline(kind);
        foreach (var m in messages)
        {
            if (kind != ChatTemplateKind.Phi4Mini && m.Role is not ("system" or "user" or "assistant")) continue;
            if (kind == ChatTemplateKind.Phi35 && m.Role == "system" && m.Content.Length == 0) continue;
            w.Frame($"<|{m.Role}|>{nl}");
            w.Turn(m.Role, m.Content + End);
            w.Frame(nl);
        }
    }

    // The expressions that make each version, in TemplateText's squashed form.
    private const string Closed = "{%ifadd_generation_prompt%}{{'<|assistant|>\\n'}}{%else%}{{eos_token}}{%endif%}";
    private static readonly string[] Phi3Turns =
    [
        "{%elifmessage['role']=='user'%}{{'<|user|>\\n'+message['content']+'<|end|>\\n'}}",
        "{%elifmessage['role']=='assistant'%}{{'<|assistant|>\\n'+message['content']+'<|end|>\\n'}}{%endif%}{%endfor%}",
        Closed,
    ];
    private const string Phi3System = "{%ifmessage['role']=='system'%}{{'<|system|>\\n'+message['content']+'<|end|>\\n'}}";
    private const string Phi35System = "{%ifmessage['role']=='system'andmessage['content']%}{{'<|system|>\\n'+message['content']+'<|end|>\\n'}}";
    private static readonly string[] Phi4Mini =
    [
        "{%else%}{{'<|'+message['role']+'|>'+message['content']+'<|end|>'}}{%endif%}{%endfor%}",
        "{%ifadd_generation_prompt%}{{'<|assistant|>'}}{%else%}{{eos_token}}{%endif%}",
    ];

    public static Recognition? Recognise(TemplateText t, Func<string, int?> token)
    {
        if (!t.Has(End) || !t.Has("|>") || token(End) is null || token(User) is null || token(Assistant) is null || token(EndOfText) is null) return null;
        if (t.Has("bos_token"))
            return Refused();
        return Phi3Turns.All(t.Has) && t.Has(Phi3System) ? Recognition.As(ChatTemplateKind.Phi3)
            : Phi3Turns.All(t.Has) && t.Has(Phi35System) ? Recognition.As(ChatTemplateKind.Phi35)
            : Phi4Mini.All(t.Has) ? Recognition.As(ChatTemplateKind.Phi4Mini)
            : Refused();
    }

    private static Recognition Refused() => Recognition.Refused(
        "Phi's <|user|>…<|end|> template in a variant we do not render (e.g. Phi-3-small's or Phi-3-medium's); we render Phi-3-mini's (phi3), Phi-3.5-mini's (phi3.5) and Phi-4-mini's (phi4-mini)");
}
