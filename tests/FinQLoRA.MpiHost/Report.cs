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

    private static readonly Stream StandardOutput = Console.OpenStandardOutput();

    /// <summary>One write() per line: Console.WriteLine may split a long line into several writes, and mpirun then
    /// interleaves another rank's output into the middle of it (seen with ~800-character id lists).</summary>
    public static void Line(int rank, string name, string text)
    {
        Console.Out.Flush();
        byte[] bytes = System.Text.Encoding.UTF8.GetBytes($"R{rank} {name} {text}\n");
        lock (StandardOutput)
        {
            StandardOutput.Write(bytes, 0, bytes.Length);
            StandardOutput.Flush();
        }
    }
}
