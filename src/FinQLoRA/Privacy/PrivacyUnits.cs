using FinQLoRA.Data.Sft;

namespace FinQLoRA.Privacy;

/// <summary>The privacy units of a training set: the ids the examples carry (<see cref="TokenizedExample.Unit"/>).</summary>
public static class PrivacyUnits
{
    /// <summary>The examples with their units renumbered 0..N−1 in order of first appearance: a weighted mix of
    /// sources may leave some records out, and N must count only the units that are trained on.</summary>
    public static List<TokenizedExample> Dense(List<TokenizedExample> examples)
    {
        var ids = new Dictionary<int, int>();
        return [.. examples.Select(e => e with { Unit = ids.TryGetValue(e.Unit, out int id) ? id : ids[e.Unit] = ids.Count })];
    }

    /// <summary>N: how many units the (dense) examples hold.</summary>
    public static int Count(IReadOnlyList<TokenizedExample> examples) => examples.Count == 0 ? 0 : examples.Max(e => e.Unit) + 1;
}
