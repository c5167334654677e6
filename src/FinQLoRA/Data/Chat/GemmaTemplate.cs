namespace FinQLoRA.Data.Chat;

/// <summary>
/// Google's Gemma format: <c>&lt;bos&gt;</c>, then per message <c>&lt;start_of_turn&gt;role\ncontent&lt;end_of_turn&gt;\n</c>
/// with the assistant's role written <c>model</c> and content trimmed; a reply is opened with
/// <c>&lt;start_of_turn&gt;model\n</c>. User and assistant alternate from a user turn (the templates raise otherwise).
/// Gemma 2's template (google/gemma-2-9b-it, also Gemma 1's) has no system role and raises on one; Gemma 3's
/// (google/gemma-3-4b-it) writes a first system message, untrimmed, and a blank line before the first user message's
/// content.
/// </summary>
internal static class GemmaTemplate
{
    public const string Bos = "<bos>", StartOfTurn = "<start_of_turn>", EndOfTurn = "<end_of_turn>";

    public static string GenerationPrompt => $"{StartOfTurn}model\n";

    public static void Turns(ChatTemplateKind kind, IReadOnlyList<ChatTurn> messages, SegmentWriter w)
    {
        string name = ChatTemplate.Name(kind);
        bool leadingSystem = messages.Count > 0 && messages[0].Role == "system";
        if (leadingSystem && kind == ChatTemplateKind.Gemma2)
            throw new UserInputException($"the {name} chat template has no system role (it raises 'System role not supported'); fold the system text into the first user message");
        string prefix = leadingSystem ? messages[0].Content + "\n\n" : "";
        var loop = leadingSystem ? messages.Skip(1).ToList() : messages;
        int first = leadingSystem ? 2 : 1;
        for (int i = 0; i < loop.Count; i++)
            if ((loop[i].Role == "user") != (i % 2 == 0))
                throw ChatTemplate.Alternation(name, kind == ChatTemplateKind.Gemma3 ? "after one optional first system message" : "", i + first, loop[i].Role);
        w.Frame(Bos);
        for (int i = 0; i < loop.Count; i++)
        {
            var m = loop[i];
            w.Frame($"{StartOfTurn}{(m.Role == "assistant" ? "model" : m.Role)}\n{(i == 0 ? prefix : "")}");
            w.Turn(m.Role, m.Content.Trim() + EndOfTurn);
            w.Frame("\n");
        }
    }

    // The expressions that make each version, in TemplateText's squashed form.
    private const string Role = "{%if(message['role']=='assistant')%}{%setrole='model'%}";
    private const string Alternate = "{%if(message['role']=='user')!=(loop.index0%2==0)%}";
    private const string OpenReply = "{{'<start_of_turn>model\\n'}}";
    private static readonly string[] Gemma2 =
    [
        "{{bos_token}}", "{{raise_exception('System role not supported')}}", Alternate, Role,
        "{{'<start_of_turn>'+role+'\\n'+message['content']|trim+'<end_of_turn>\\n'}}", OpenReply,
    ];
    private static readonly string[] Gemma3 =
    [
        "{{bos_token}}", "{%setfirst_user_prefix=messages[0]['content']+'\\n\\n'%}", Alternate, Role,
        "{{'<start_of_turn>'+role+'\\n'+(first_user_prefixifloop.firstelse'')}}", "{{message['content']|trim}}",
        "{{'<end_of_turn>\\n'}}", OpenReply,
    ];

    public static Recognition? Recognise(TemplateText t, Func<string, int?> token)
    {
        if (!t.Has(StartOfTurn) || token(Bos) is null || token(StartOfTurn) is null || token(EndOfTurn) is null) return null;
        return Gemma3.All(t.Has) ? Recognition.As(ChatTemplateKind.Gemma3)
            : Gemma2.All(t.Has) ? Recognition.As(ChatTemplateKind.Gemma2)
            : Recognition.Refused("Gemma's <start_of_turn> template in a variant we do not render; we render Gemma 2's (gemma2) and Gemma 3's (gemma3)");
    }
}
