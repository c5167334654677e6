using System.Text.RegularExpressions;

namespace FinQLoRA.Data.Chat;

/// <summary>
/// ChatML: per message <c>&lt;|im_start|&gt;role\ncontent&lt;|im_end|&gt;\n</c>, the reply opened with
/// <c>&lt;|im_start|&gt;assistant\n</c>. Qwen's templates add a default system message when the first message is not
/// one (<see cref="ChatTemplateKind.Qwen2"/>, <see cref="ChatTemplateKind.Qwen25"/>); we render that too, since the
/// model saw it in training and sees it from every server that runs its template.
/// <para>Qwen3's template is plain ChatML for what we render, with one difference we keep on purpose: it writes an
/// empty <c>&lt;think&gt;\n\n&lt;/think&gt;\n\n</c> before the content of an assistant turn that follows the last user
/// message and ends the conversation (and strips <c>&lt;think&gt;…&lt;/think&gt;</c> from earlier replies). Training
/// data keeps the assistant content as given, so a data set decides for itself whether its replies think.</para>
/// </summary>
internal static class ChatMlTemplate
{
    public const string ImStart = "<|im_start|>", ImEnd = "<|im_end|>";

    /// <summary>The default system prompts we render, by the kind that writes them.</summary>
    private static readonly (ChatTemplateKind Kind, string System)[] DefaultSystems =
    [
        (ChatTemplateKind.Qwen25, "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."),
        (ChatTemplateKind.Qwen2, "You are a helpful assistant."),
    ];

    public static string GenerationPrompt => $"{ImStart}assistant\n";

    public static void Turns(ChatTemplateKind kind, IReadOnlyList<ChatTurn> messages, SegmentWriter w)
    {
        if (DefaultSystem(kind) is { } system && (messages.Count == 0 || messages[0].Role != "system"))
            w.Frame($"{ImStart}system\n{system}{ImEnd}\n");
        foreach (var m in messages)
        {
            w.Frame($"{ImStart}{m.Role}\n");
            w.Turn(m.Role, m.Content + ImEnd);
            w.Frame("\n");
        }
    }

    private static string? DefaultSystem(ChatTemplateKind kind) =>
        DefaultSystems.Where(d => d.Kind == kind).Select(d => d.System).FirstOrDefault();

    // A system turn written out whole, in one string literal or as text between tags: the default a template adds
    // when the conversation has none.
    private static readonly Regex LiteralSystemTurn = new(@"'<\|im_start\|>system\\n((?:[^'\\]|\\.)+?)<\|im_end\|>|(?<!')<\|im_start\|>system\n([^{}']+?)<\|im_end\|>", RegexOptions.CultureInvariant);

    public static Recognition? Recognise(TemplateText t, Func<string, int?> token)
    {
        if (!t.Has(ImStart) || token(ImStart) is null || token(ImEnd) is null) return null;
        if (t.Has("<|im_sep|>"))
            return Recognition.Refused("ChatML with <|im_sep|> after the role (Phi-4's), which we do not render");
        if (t.Has("'<|im_start|>assistant\\n<think>"))
            return Recognition.Refused("ChatML that opens every reply with <think> (a reasoning model's), which we do not render");
        var defaults = LiteralSystemTurn.Matches(t.Squashed).Select(m => m.Groups[1].Success ? m.Groups[1].Value : m.Groups[2].Value).Distinct().ToList();
        if (defaults.Count == 0) return Recognition.As(ChatTemplateKind.ChatMl);
        var known = DefaultSystems.Where(d => defaults.Count == 1 && d.System == defaults[0]).ToList();
        return known.Count == 1 ? Recognition.As(known[0].Kind)
            : Recognition.Refused($"ChatML with the default system prompt \"{string.Join("\" / \"", defaults)}\", which we do not render (we render Qwen's two)");
    }
}
