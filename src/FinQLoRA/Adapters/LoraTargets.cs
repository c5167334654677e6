using FinQLoRA.Models;
using FinQLoRA.Models.Families;

namespace FinQLoRA.Adapters;

/// <summary>
/// The one parser of LoRA target names (PEFT's <c>target_modules</c>, the train config's <c>targets</c>,
/// <c>memory --targets</c>): module names as PEFT writes them (<c>q_proj</c>, Phi-3's <c>qkv_proj</c>, …), or
/// "all-linear" ("all" for short). Names are checked twice, as PEFT does: when read (<see cref="Parse(IEnumerable{string}, string)"/>:
/// a name no family has is refused before any model is opened) and when the model is known
/// (<see cref="Resolve(IEnumerable{string}, ModelFamily, string)"/>: "all-linear" becomes the family's projections, and a
/// name the family lacks, such as q_proj on Phi-3, is refused with the family's module names).
/// </summary>
public static class LoraTargets
{
    /// <summary>PEFT's spelling of "every linear projection of the blocks, lm_head excluded".</summary>
    public const string AllLinear = "all-linear";

    // Every projection any family has, in module order within a block (attention inputs, output, MLP inputs, down):
    // the order adapter files list target_modules in and messages name them in.
    private static readonly ProjectionKind[] ModuleOrder =
    [
        ProjectionKind.Q, ProjectionKind.K, ProjectionKind.V, ProjectionKind.Qkv, ProjectionKind.O,
        ProjectionKind.Gate, ProjectionKind.Up, ProjectionKind.GateUp, ProjectionKind.Down,
    ];

    private static string KnownNames => string.Join(", ", ModuleOrder.Select(ModelLayout.ModuleName));

    /// <summary>
    /// Checks target names before the model is known: trims them, drops duplicates, puts them in module order (PEFT
    /// keeps a set), turns "all"/"all-linear" into <see cref="AllLinear"/> alone, and refuses names that are no
    /// projection of any family;
    /// <paramref name="source"/> (a file or a config field) starts any error message.
    /// </summary>
    public static IReadOnlyList<string> Parse(IEnumerable<string> targets, string source) => Parse(targets, source, null);

    /// <param name="family">the model's family where it is known: messages then list its module names</param>
    private static IReadOnlyList<string> Parse(IEnumerable<string> targets, string source, ModelFamily? family)
    {
        string valid = family is null ? $"{KnownNames} (as the model's family has them)" : FamilyNames(family);
        var list = targets.Select(t => t.Trim()).Where(t => t.Length > 0).Distinct().ToList();
        if (list.Count == 0)
            throw new UserInputException($"{source}: target_modules is empty; name projections ({valid}) or use \"{AllLinear}\"");
        if (list.Any(IsAllLinear)) return [AllLinear];
        var unknown = list.Where(t => ModelLayout.ParseModuleName(t) is null).ToList();
        if (unknown.Count > 0)
            throw new UserInputException($"{source}: unknown target module(s) {string.Join(", ", unknown.Select(u => $"'{u}'"))}; valid names are {valid} or \"{AllLinear}\" (lm_head cannot be targeted)");
        return Names(list.Select(t => ModelLayout.ParseModuleName(t)!.Value));
    }

    /// <summary><see cref="Parse(IEnumerable{string}, string)"/> for a comma-separated list (<c>q_proj,v_proj</c>).</summary>
    public static IReadOnlyList<string> Parse(string commaSeparated, string source) => Parse(Split(commaSeparated), source);

    /// <summary>
    /// The projections of <paramref name="family"/> the names select, in the family's module order: "all-linear" is
    /// every projection of its blocks (Phi-3: qkv_proj, o_proj, gate_up_proj, down_proj), as PEFT's all-linear finds
    /// them; a name the family lacks is refused naming the family and its modules.
    /// </summary>
    public static IReadOnlyList<ProjectionKind> Resolve(IEnumerable<string> targets, ModelFamily family, string source)
    {
        var names = Parse(targets, source, family);
        if (names.Count == 1 && names[0] == AllLinear) return family.Projections;
        var kinds = Fused(names.Select(n => ModelLayout.ParseModuleName(n)!.Value).ToList(), family);
        var missing = kinds.Where(k => !family.Projections.Contains(k)).ToList();
        if (missing.Count > 0)
            throw new UserInputException($"{source}: {family.HfArchitecture} ({family.ModelType}) models have no {string.Join(", ", missing.Select(ModelLayout.ModuleName))}; "
                + $"their projections are {FamilyNames(family)} (or \"{AllLinear}\" for all of them)");
        return family.Projections.Where(kinds.Contains).ToList();
    }

    /// <summary>On a family that fuses projections (Phi-3), all of a fused projection's parts named together select it:
    /// q_proj, k_proj and v_proj are qkv_proj's rows, gate_proj and up_proj gate_up_proj's, so the default q, k, v
    /// means the same adapter place on every family. A part named alone still has no place there and is refused.</summary>
    private static List<ProjectionKind> Fused(List<ProjectionKind> kinds, ModelFamily family)
    {
        foreach (var (fused, parts) in new[] { (ProjectionKind.Qkv, new[] { ProjectionKind.Q, ProjectionKind.K, ProjectionKind.V }), (ProjectionKind.GateUp, [ProjectionKind.Gate, ProjectionKind.Up]) })
            if (family.Projections.Contains(fused) && parts.All(kinds.Contains) && !parts.Any(family.Projections.Contains))
                kinds = [.. kinds.Except(parts), fused];
        return kinds;
    }

    /// <summary><see cref="Resolve(IEnumerable{string}, ModelFamily, string)"/> for a comma-separated list.</summary>
    public static IReadOnlyList<ProjectionKind> Resolve(string commaSeparated, ModelFamily family, string source) =>
        Resolve(Split(commaSeparated), family, source);

    /// <summary>Whether a name means every linear projection (PEFT's "all-linear", or "all").</summary>
    public static bool IsAllLinear(string name) => name is AllLinear or "all";

    /// <summary>The module names of a list of projections, in module order, as PEFT's target_modules lists them.</summary>
    public static IReadOnlyList<string> Names(IEnumerable<ProjectionKind> kinds)
    {
        var set = kinds.ToHashSet();
        return [.. ModuleOrder.Where(set.Contains).Select(ModelLayout.ModuleName)];
    }

    private static string FamilyNames(ModelFamily family) => string.Join(", ", family.Projections.Select(ModelLayout.ModuleName));

    private static string[] Split(string commaSeparated) =>
        commaSeparated.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}
