using System.Security.Cryptography;
using System.Text;

namespace FinQLoRA.Data.Tasks;

/// <summary>
/// Deterministic train/test partition of built examples. Examples are grouped by their normalised input text
/// (headline's nine questions about one headline stay on the same side, so no headline leaks into both), and a
/// group goes to test when SHA-256(seed, input) read as a fraction is below <c>testFraction</c>. The choice
/// depends only on the seed and the text, not on file order or on which other examples are present.
/// </summary>
public static class TaskSplitter
{
    public static (IReadOnlyList<Example> Train, IReadOnlyList<Example> Test) Split(IReadOnlyList<Example> examples, double testFraction, int seed)
    {
        if (testFraction is < 0 or > 1) throw new UserInputException($"test fraction {testFraction} must be between 0 and 1");
        var train = new List<Example>();
        var test = new List<Example>();
        var side = new Dictionary<string, bool>(StringComparer.Ordinal);
        foreach (var e in examples)
        {
            string key = InputText.Of(e);
            if (!side.TryGetValue(key, out bool isTest)) side[key] = isTest = Fraction(seed, key) < testFraction;
            (isTest ? test : train).Add(e);
        }
        return (train, test);
    }

    public static bool IsTest(string normalizedInput, double testFraction, int seed) => Fraction(seed, normalizedInput) < testFraction;

    private static double Fraction(int seed, string key)
    {
        byte[] hash = SHA256.HashData(Encoding.UTF8.GetBytes($"{seed}\n{key}"));
        ulong top = BitConverter.ToUInt64(hash, 0) >> 11; // 53 bits
        return top / (double)(1UL << 53);
    }
}
