namespace FinQLoRA.Data.Chat;

/// <summary>What a family's rule made of a template it recognised: the kind we render, or why we render none (a
/// variant of the family whose text differs from every kind's).</summary>
internal readonly record struct Recognition(ChatTemplateKind? Kind, string? Unsupported)
{
    public static Recognition As(ChatTemplateKind kind) => new(kind, null);

    public static Recognition Refused(string why) => new(null, why);
}
