using System.Globalization;

namespace FinQLoRA.Bench.OnDevice;

/// <summary><c>--name value</c> pairs of a device bench, every name checked against the ones the bench knows.</summary>
internal sealed class Flags
{
    private static readonly string[] Known =
        ["shapes", "bits", "checkpointing", "steps", "warmup", "dropout", "batches", "prompt", "decode", "context", "json", "probe", "batch", "seq"];

    private readonly Dictionary<string, string> _values = new(StringComparer.Ordinal);

    public static Flags Parse(string[] args, string bench)
    {
        var flags = new Flags();
        for (int i = 0; i < args.Length; i++)
        {
            string name = args[i].StartsWith("--", StringComparison.Ordinal) ? args[i][2..] : "";
            if (!Known.Contains(name))
                throw new UserInputException($"{bench} --device: unknown option '{args[i]}'; {DeviceBench.Help}");
            if (i + 1 >= args.Length) throw new UserInputException($"{args[i]} needs a value");
            flags._values[name] = args[++i];
        }
        return flags;
    }

    public string? Get(string name) => _values.GetValueOrDefault(name);

    public string Get(string name, string fallback) => _values.GetValueOrDefault(name) ?? fallback;

    public int Int(string name, int fallback) => _values.TryGetValue(name, out string? v) ? Ints(v, "--" + name)[0] : fallback;

    /// <summary>"16,8,4" → [16, 8, 4]; each a positive integer.</summary>
    public static int[] Ints(string text, string option) => text.Split(',').Select(s =>
        int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n > 0 ? n
            : throw new UserInputException($"{option} '{text}': expected positive integers separated by commas")).ToArray();

    /// <summary>"4x512" → (4, 512).</summary>
    public static (int Batch, int Seq) Shape(string text)
    {
        var parts = text.Split('x');
        if (parts.Length != 2) throw new UserInputException($"--shapes '{text}': expected BATCHxSEQ, e.g. 4x512");
        return (Ints(parts[0], "--shapes")[0], Ints(parts[1], "--shapes")[0]);
    }
}
