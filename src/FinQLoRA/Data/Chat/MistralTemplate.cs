using System.Text.RegularExpressions;

namespace FinQLoRA.Data.Chat;

/// <summary>
/// Mistral's <c>[INST]</c> templates, as mistralai's tokenizer_config.json files render them (mistralai's cookbook,
/// concept-deep-dive/tokenization, names the tokenizer versions). All write BOS, then per user message
/// <c>open + content + close</c> and per reply <c>prefix + content + &lt;/s&gt;</c>, after an optional first system
/// message with user and assistant alternating from a user turn (the templates raise otherwise). No reply is opened:
/// the model continues after <c>[/INST]</c>. They differ in
/// <list type="bullet">
/// <item>the spaces around <c>[INST]</c> and <c>[/INST]</c> and before a reply, and whether the reply is trimmed;</item>
/// <item>where the system prompt goes: v1 puts <c>system\n\n</c> before the first user message; v3 and tekken before
/// the user message that is the conversation's last message, so a conversation that ends with a reply (training
/// data) renders without it, as their template does.</item>
/// </list>
/// </summary>
internal static class MistralTemplate
{
    public const string Bos = "<s>", Eos = "</s>", Inst = "[INST]", EndInst = "[/INST]";

    private enum SystemPlace { BeforeFirstUser, BeforeLastMessage }

    private sealed record Style(ChatTemplateKind Kind, string Open, string Close, string ReplyPrefix, bool TrimReply, SystemPlace System, bool InstTokens);

    private static readonly Style[] Styles =
    [
        new(ChatTemplateKind.MistralV1, " [INST] ", " [/INST]", " ", false, SystemPlace.BeforeFirstUser, false),
        new(ChatTemplateKind.MistralV3, "[INST] ", "[/INST]", " ", true, SystemPlace.BeforeLastMessage, true),
        new(ChatTemplateKind.MistralV3Tekken, "[INST]", "[/INST]", "", false, SystemPlace.BeforeLastMessage, true),
        new(ChatTemplateKind.Ministral, "[INST]", "[/INST]", " ", true, SystemPlace.BeforeLastMessage, true),
    ];

    public static bool Renders(ChatTemplateKind kind) => Styles.Any(s => s.Kind == kind);

    public static void Turns(ChatTemplateKind kind, IReadOnlyList<ChatTurn> messages, SegmentWriter w)
    {
        var style = Styles.Single(s => s.Kind == kind);
        string name = ChatTemplate.Name(kind);
        string? system = messages.Count > 0 && messages[0].Role == "system" ? messages[0].Content : null;
        var loop = system is null ? messages : messages.Skip(1).ToList();
        int first = system is null ? 1 : 2; // the 1-based number of loop[0] in the conversation, for messages
        for (int i = 0; i < loop.Count; i++)
            if ((loop[i].Role == "user") != (i % 2 == 0))
                throw ChatTemplate.Alternation(name, "after one optional first system message", i + first, loop[i].Role);
        w.Frame(Bos);
        for (int i = 0; i < loop.Count; i++)
        {
            var m = loop[i];
            if (m.Role == "user")
            {
                bool withSystem = system is not null && (style.System == SystemPlace.BeforeFirstUser ? i == 0 : i == loop.Count - 1);
                w.Frame(style.Open + (withSystem ? system + "\n\n" : "") + m.Content + style.Close);
            }
            else if (m.Role == "assistant")
                w.Train(style.ReplyPrefix + (style.TrimReply ? m.Content.Trim() : m.Content) + Eos);
            else
                throw new UserInputException($"the {name} chat template knows only user and assistant messages after one optional first system message (message {i + first} is '{m.Role}')");
        }
    }

    // The expressions that make a style, in TemplateText's squashed form.
    private static readonly Regex UserTurn = new(@"\{\{'( ?\[INST\] ?)'\+message\['content'\]\+'( ?\[/INST\])'\}\}", RegexOptions.CultureInvariant);
    private static readonly Regex Reply = new(@"\{\{(' '\+)?message\['content'\](\|trim)?\+eos_token\}\}", RegexOptions.CultureInvariant);

    public static Recognition? Recognise(TemplateText t, Func<string, int?> token)
    {
        if (!t.Has(Inst) || t.Has("<<SYS>>") || token(Bos) is null || token(Eos) is null) return null; // <<SYS>>: Llama 2's
        if (t.Has("[SYSTEM_PROMPT]"))
            return Recognition.Refused("Mistral's [INST] template in its v7 form ([SYSTEM_PROMPT]…[/SYSTEM_PROMPT], Mistral-Small-3 and later), which we do not render");
        var user = UserTurn.Match(t.Squashed);
        var reply = Reply.Match(t.Squashed);
        SystemPlace? place = t.Has("{%ifloop.firstandsystem_messageisdefined%}") ? SystemPlace.BeforeFirstUser
            : t.Has("{%ifloop.lastandsystem_messageisdefined%}") ? SystemPlace.BeforeLastMessage
            : null;
        var style = !user.Success || !reply.Success || place is null || !t.Has("{{bos_token}}") ? null
            : Styles.FirstOrDefault(s => s.Open == user.Groups[1].Value && s.Close == user.Groups[2].Value
                && s.ReplyPrefix == (reply.Groups[1].Success ? " " : "") && s.TrimReply == reply.Groups[2].Success && s.System == place
                && t.Has($"{{{{'{s.Open}'+system_message+'\\n\\n'+message['content']+'{s.Close}'}}}}"));
        if (style is null)
            return Recognition.Refused($"Mistral's [INST] template in a variant we do not render ({Describe(user, reply, place, t)}); we render mistral-v1, mistral-v3, mistral-v3-tekken and ministral");
        if (style.InstTokens && (token(Inst) is null || token(EndInst) is null)) return null;
        return Recognition.As(style.Kind);
    }

    private static string Describe(Match user, Match reply, SystemPlace? place, TemplateText t) => string.Join(", ",
        user.Success ? $"user turn '{user.Groups[1].Value}…{user.Groups[2].Value}'" : "no user turn we can read",
        reply.Success ? $"reply '{(reply.Groups[1].Success ? " " : "")}…{(reply.Groups[2].Success ? " trimmed" : "")}'" : "no reply we can read",
        place switch
        {
            SystemPlace.BeforeFirstUser => "system prompt before the first user message",
            SystemPlace.BeforeLastMessage => "system prompt before the last message",
            _ => t.Has("system_message") ? "a system prompt placed otherwise" : "no system role (2023's template, e.g. Mixtral-8x7B-Instruct-v0.1)",
        });
}
