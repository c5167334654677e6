using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using FinQLoRA.Loading;
using FinQLoRA.Server;
using FinQLoRA.Server.Audit;
using FinQLoRA.Serving;
using static TorchSharp.torch;

namespace FinQLoRA.Bench;

/// <summary>
/// What <c>--audit-log</c> costs a server: requests/s of short greedy completions (stories260K, 4 new tokens, so that
/// the per-request work around the model weighs most) from 16 concurrent clients, with the audit log (a line per
/// request, fsynced as a group commit) against the same server without it, alternated five times in one run; the median of each.
/// </summary>
public static class AuditBench
{
    public const string Help = "requests/s with --audit-log (one write per line, fsync per group of queued lines) vs without, 16 clients, stories260K [--shared DIR] [--threads N]";

    public static int Run(string[] args)
    {
        int i = Array.IndexOf(args, "--threads");
        set_num_threads(i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : 2);
        int s = Array.IndexOf(args, "--shared");
        // default: from bin/Release/net10.0/RID up to the checkout, then ../shared beside it
        string shared = s >= 0 && s + 1 < args.Length ? args[s + 1] : Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", "..", "..", "..", "shared");
        string stories = Path.GetFullPath(Path.Combine(shared, "models", "stories260K-hf"));
        if (!Directory.Exists(stories)) throw new UserInputException($"{stories}: not found; pass --shared <folder holding models/>");
        string temp = Directory.CreateTempSubdirectory("finqlora-auditbench-").FullName;
        try
        {
            RequestsPerSecond(stories, null).GetAwaiter().GetResult(); // warm-up: JIT and caches
            var without = new List<double>();
            var with = new List<double>();
            var written = new List<double>();
            for (int round = 0; round < 5; round++)
            {
                without.Add(RequestsPerSecond(stories, null).GetAwaiter().GetResult().Answered);
                var (answered, audited) = RequestsPerSecond(stories, Path.Combine(temp, $"audit-{round}.jsonl")).GetAwaiter().GetResult();
                with.Add(answered);
                written.Add(audited);
            }
            double a = Median(with), b = Median(without), w = Median(written);
            Console.WriteLine($"stories260K, 16 clients x {Requests} requests, 4 new tokens each (median of 5 alternated rounds):");
            Console.WriteLine($"  answered with --audit-log {a:F1} req/s, without {b:F1} req/s = {a / b:F2}x");
            // the same round's two rates: robust to a neighbour taking the CPU, unlike two rounds compared
            double keptUp = with.Zip(written, (x, y) => y / x).Min();
            Console.WriteLine($"  audited (until the last line is in the file) {w:F1} req/s; audited / answered in the same round >= {keptUp:F2}");
            Console.WriteLine($"  rounds with: {Join(with)}; without: {Join(without)}; audited: {Join(written)}");
        }
        finally
        {
            Directory.Delete(temp, recursive: true); // our own temp folder from CreateTempSubdirectory: the audit files only
        }
        return 0;
    }

    private const int Clients = 16, Requests = 64;

    private static double Median(List<double> xs) => xs.Order().ElementAt(xs.Count / 2);

    private static string Join(List<double> xs) => string.Join(", ", xs.Select(x => x.ToString("F1", CultureInfo.InvariantCulture)));

    /// <returns>requests answered per second, and (with an audit file) requests per second until the last line was in the file</returns>
    private static async Task<(double Answered, double Audited)> RequestsPerSecond(string model, string? auditFile)
    {
        var tokenizer = ModelLoading.LoadTokenizer(model);
        using var weights = ModelLoading.LoadModel(model, new ModelLoadOptions { DType = ScalarType.Float32 });
        var metrics = new ServerMetrics("s");
        using var engine = new ServingEngine(weights, tokenizer, new EngineOptions { MaxBatch = 16, MaxModelLen = 64, PrefixCacheBytes = 0 }, metrics);
        var options = new ServerOptions { ServedModelName = "s", Port = 0, AuditLog = auditFile is null ? null : new AuditLogOptions { Path = auditFile } };
        await using var server = OpenAiServer.Create(engine, options, metrics);
        await server.StartAsync();
        using var http = new HttpClient { BaseAddress = server.Url };
        async Task Send(int clients, int requests) => await Task.WhenAll(Enumerable.Range(0, clients).Select(c => Task.Run(async () =>
        {
            for (int r = 0; r < requests; r++)
            {
                using var response = await http.PostAsJsonAsync("/v1/completions", new { model = "s", prompt = $"Once upon a time {c} {r}", max_tokens = 4, temperature = 0 });
                response.EnsureSuccessStatusCode();
            }
        })));
        await Send(4, 2); // warm-up
        var sw = Stopwatch.StartNew();
        await Send(Clients, Requests);
        double answered = Clients * Requests / sw.Elapsed.TotalSeconds;
        double audited = 0;
        if (auditFile is not null)
        {
            while (Lines(auditFile) < 8 + Clients * Requests) await Task.Delay(1);
            audited = Clients * Requests / sw.Elapsed.TotalSeconds;
        }
        await server.StopAsync();
        return (answered, audited);
    }

    private static int Lines(string file)
    {
        using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        int n = 0, b;
        var buffer = new byte[1 << 16];
        while ((b = stream.Read(buffer)) > 0) n += buffer.AsSpan(0, b).Count((byte)'\n');
        return n;
    }
}
