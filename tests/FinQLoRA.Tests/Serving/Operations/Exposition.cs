using System.Globalization;
using System.Text.RegularExpressions;

namespace FinQLoRA.Tests.Serving.Operations;

/// <summary>Prometheus's text format (0.0.4) read strictly, as a scraper reads it: every line is a comment, a
/// <c># TYPE</c>/<c># HELP</c> line or a sample <c>name{label="value",…} number</c> whose name is a valid Prometheus
/// name (colons allowed); a line that is none of these fails the test.</summary>
public sealed partial class Exposition
{
    public sealed record Sample(string Name, IReadOnlyDictionary<string, string> Labels, double Value);

    public List<Sample> Samples { get; } = [];
    /// <summary>metric family → its declared type.</summary>
    public Dictionary<string, string> Types { get; } = [];

    public static Exposition Parse(string text)
    {
        var e = new Exposition();
        foreach (string line in text.Split('\n'))
        {
            if (line.Length == 0) continue;
            if (TypeLine().Match(line) is { Success: true } t)
            {
                e.Types[t.Groups[1].Value] = t.Groups[2].Value;
                continue;
            }
            if (line.StartsWith('#')) continue;
            var m = SampleLine().Match(line);
            Assert.True(m.Success, $"not a Prometheus sample line: {line}");
            var labels = new Dictionary<string, string>();
            foreach (Match l in LabelPair().Matches(m.Groups[2].Value))
                labels[l.Groups[1].Value] = Regex.Unescape(l.Groups[2].Value);
            string value = m.Groups[3].Value;
            double v = value switch { "+Inf" => double.PositiveInfinity, "-Inf" => double.NegativeInfinity, "NaN" => double.NaN, _ => double.Parse(value, CultureInfo.InvariantCulture) };
            e.Samples.Add(new Sample(m.Groups[1].Value, labels, v));
        }
        return e;
    }

    public IEnumerable<Sample> Named(string name) => Samples.Where(s => s.Name == name);

    /// <summary>The one sample of <paramref name="name"/> (fails when there is none or several).</summary>
    public Sample One(string name) => Assert.Single(Named(name));

    /// <summary>A histogram's upper bounds, in order, +Inf last.</summary>
    public double[] Buckets(string histogram) => Named(histogram + "_bucket").Select(s => double.Parse(s.Labels["le"] == "+Inf" ? "Infinity" : s.Labels["le"], CultureInfo.InvariantCulture)).ToArray();

    [GeneratedRegex(@"^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$")]
    private static partial Regex TypeLine();
    [GeneratedRegex(@"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*=""(?:[^""\\]|\\.)*"",?)*)\})? ([^ ]+)$")]
    private static partial Regex SampleLine();
    [GeneratedRegex(@"([a-zA-Z_][a-zA-Z0-9_]*)=""((?:[^""\\]|\\.)*)""")]
    private static partial Regex LabelPair();
}
