using System.Globalization;
using TorchSharp;

namespace FinQLoRA.MpiHost;

/// <summary>Prints results as one line each, "R&lt;rank&gt; &lt;name&gt; v1,v2,...", for the tests to parse.</summary>
internal static class Report
{
    public static void Line(int rank, string name, torch.Tensor values)
    {
        double[] numbers = values.to(torch.ScalarType.Float64, torch.CPU).contiguous().reshape(-1).data<double>().ToArray();
        Line(rank, name, string.Join(",", numbers.Select(v => v.ToString("R", CultureInfo.InvariantCulture))));
    }

    public static void Line(int rank, string name, string text)
    {
        Console.WriteLine($"R{rank} {name} {text}");
        Console.Out.Flush();
    }
}
