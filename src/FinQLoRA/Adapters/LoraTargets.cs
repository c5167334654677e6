using FinQLoRA.Models;

namespace FinQLoRA.Adapters;

/// <summary>The one parser of LoRA target names (PEFT's <c>target_modules</c>, the train config's <c>targets</c>,
/// <c>memory --targets</c>): module names as PEFT writes them (<c>q_proj</c>, …), or "all" / "all-linear".</summary>
public static class LoraTargets
{
    /// <summary>Every linear projection of a block, in module order (what PEFT's "all-linear" selects; lm_head excluded).</summary>
    public static IReadOnlyList<ProjectionKind> All => ModelLayout.Projections;

    /// <summary>The module names of every projection, for messages and PEFT files.</summary>
    public static IReadOnlyList<string> AllNames { get; } = [.. ModelLayout.Projections.Select(ModelLayout.ModuleName)];

    /// <summary>Expands "all"/"all-linear", removes duplicates (keeping the given order) and rejects unknown names;
    /// <paramref name="source"/> (a file or a config field) starts any error message.</summary>
    public static IReadOnlyList<ProjectionKind> Resolve(IEnumerable<string> targets, string source)
    {
        var list = targets.Select(t => t.Trim()).Where(t => t.Length > 0).ToList();
        if (list.Count == 0)
            throw new UserInputException($"{source}: target_modules is empty; name projections ({string.Join(", ", AllNames)}) or use \"all\"");
        if (list.Any(t => t is "all" or "all-linear")) return All;
        var unknown = list.Where(t => ModelLayout.ParseModuleName(t) is null).ToList();
        if (unknown.Count > 0)
            throw new UserInputException($"{source}: unknown target module(s) {string.Join(", ", unknown.Select(u => $"'{u}'"))}; valid names are {string.Join(", ", AllNames)} or \"all\" (lm_head cannot be targeted)");
        return list.Select(t => ModelLayout.ParseModuleName(t)!.Value).Distinct().ToList();
    }

    /// <summary><see cref="Resolve(IEnumerable{string}, string)"/> for a comma-separated list (<c>q_proj,v_proj</c>).</summary>
    public static IReadOnlyList<ProjectionKind> Resolve(string commaSeparated, string source) =>
        Resolve(commaSeparated.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries), source);

    /// <summary>The module names of a list of projections, in module order, as PEFT's target_modules lists them.</summary>
    public static IReadOnlyList<string> Names(IEnumerable<ProjectionKind> kinds) => [.. kinds.Order().Distinct().Select(ModelLayout.ModuleName)];
}
