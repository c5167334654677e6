using FinQLoRA.Loading;
using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using FinQLoRA.Adapters;
using FinQLoRA.Demo;
using FinQLoRA.Inference;
using FinQLoRA.Models;
using FinQLoRA.Server;
using FinQLoRA.Serving;
using static TorchSharp.torch;

namespace FinQLoRA.Bench;

/// <summary>
/// <c>finqlora serve</c>'s throughput, as ratios measured in one run on each model (stories260K and a 76M-parameter
/// random Llama): served tokens/s at 1, 4, 16 and 32 concurrent greedy streams over loopback HTTP against one stream;
/// 16 served streams against offline batched generation (<see cref="TextGenerator"/>, batch 16) of the same prompts;
/// 16 streams mixing 8 adapters against 16 streams of one adapter; and the time to the first streamed token (p50/p99)
/// at 32 streams. Clients measure from sending the request to reading the first chunk.
/// </summary>
public static class ServeBench
{
    public const string Help = "served tok/s at 1/4/16/32 streams vs 1, vs offline batched generate, 8-adapter mix vs 1 adapter, TTFT p50/p99, cached-prefix TTFT, decisions vs completions, 64 adapters through 8 device slots vs 8 [--quick] [--threads N] [--shared DIR] [--skip-random] [--only throughput|prefix|decisions|constrained|adapters]; --only quantized [--shape 1b|76m]: 1/4/16 streams on a 4-bit model with 4 adapters, fused gemv on vs off; under mpirun -np N with --pipeline-stages N [--micro-batches M]: 16 streams across N ranks vs one process, memory per rank vs the planner's stage";

    internal static readonly string[] Starts =
    [
        "Once upon a time", "The little dog", "Lily went to the park", "Tom had a big", "One day, a girl named Sue", "The sun was",
        "There was a cat", "Ben and his mom", "A bird sat on", "The old man", "Anna liked to", "In the forest",
    ];

    internal sealed record Measured(int Streams, double TokensPerSecond, double TtftP50, double TtftP99);

    public static int Run(string[] args)
    {
        bool quick = args.Contains("--quick"), skipRandom = args.Contains("--skip-random");
        // --only throughput|prefix|decisions|constrained|adapters runs one part of the bench
        string? only = Value(args, "--only");
        bool Wants(string part) => only is null || only == part;
        int threads = Value(args, "--threads") is { } t ? int.Parse(t, System.Globalization.CultureInfo.InvariantCulture) : 2;
        string shared = Value(args, "--shared") ?? Path.GetFullPath(Path.Combine(RepoRoot(), "..", "shared"));
        set_num_threads(threads);
        string stories = Path.Combine(shared, "models", "stories260K-hf");
        if (!Directory.Exists(stories)) throw new UserInputException($"{stories}: not found; pass --shared <folder holding models/>");
        if (Value(args, "--pipeline-stages") is { } stages)
            return ServePipelineBench.Run(int.Parse(stages, System.Globalization.CultureInfo.InvariantCulture),
                Value(args, "--micro-batches") is { } m ? int.Parse(m, System.Globalization.CultureInfo.InvariantCulture) : null, stories, quick);
        if (only == "quantized") // not part of the default run: minutes on the 1B shape
        {
            QuantizedServeBench.RunAsync(shared, quick, Value(args, "--shape") ?? "1b").GetAwaiter().GetResult();
            return 0;
        }
        var total = Stopwatch.StartNew();
        if (Wants("throughput")) Measure("stories260K", stories, tokens: quick ? 32 : 64, requestsPerClient: quick ? 2 : 4).GetAwaiter().GetResult();
        if (!skipRandom)
        {
            string temp = Directory.CreateTempSubdirectory("finqlora-servebench-").FullName;
            try
            {
                var config = new ModelConfig
                {
                    HiddenSize = 768, IntermediateSize = 2048, NumLayers = 12, NumHeads = 12, NumKvHeads = 4, HeadDim = 64,
                    VocabSize = 512, MaxPositionEmbeddings = 2048, BosTokenId = 1, EosTokenIds = [2],
                };
                string folder = Path.Combine(temp, "random-76M");
                RandomLlama.WriteHfFolder(config, folder, seed: 42);
                // stories260K's tokenizer (vocabulary 512) makes the random model's prompts readable text.
                foreach (string file in new[] { "tokenizer.json", "tokenizer_config.json" }) File.Copy(Path.Combine(stories, file), Path.Combine(folder, file));
                if (Wants("throughput")) Measure("random-76M", folder, tokens: quick ? 12 : 32, requestsPerClient: 1).GetAwaiter().GetResult();
                if (Wants("prefix")) PrefixCacheBench.Run(folder, quick);
                if (Wants("decisions")) DecisionsBench.RunAsync("random-76M", folder).GetAwaiter().GetResult();
                if (Wants("adapters")) AdapterResidencyBench.RunAsync(folder, Path.Combine(temp, "adapters"), quick).GetAwaiter().GetResult();
            }
            finally
            {
                Directory.Delete(temp, recursive: true);
            }
        }
        if (!skipRandom && Wants("constrained")) ConstrainedDecodingBench.Run(shared, quick);
        Console.WriteLine($"total {total.Elapsed.TotalSeconds:F0} s ({threads} threads{(quick ? ", quick" : "")})");
        return 0;
    }

    private static async Task Measure(string name, string folder, int tokens, int requestsPerClient)
    {
        var tokenizer = ModelLoading.LoadTokenizer(folder);
        using var model = ModelLoading.LoadModel(folder, new ModelLoadOptions { DType = ScalarType.Float32 });
        long parameters = model.CountParameters().Total;
        var prompts = Enumerable.Range(0, 32).Select(i => Starts[i % Starts.Length] + (i >= Starts.Length ? $" {i}" : "")).ToArray();
        var ids = prompts.Select(p => tokenizer.Encode(p, addBos: true)).ToList();

        // Offline batched generation of the first 16 prompts, before the engine owns the model.
        var generator = new TextGenerator(model, tokenizer);
        var options = new GenerationOptions { MaxNewTokens = tokens };
        generator.GenerateIds(ids.Take(2).ToList(), options with { MaxNewTokens = 4 }, 2); // warm-up
        var offlineRates = new List<double>();
        for (int i = 0; i < 3; i++) // the median of three, as for the served figures
        {
            var sw = Stopwatch.StartNew();
            var offline = generator.GenerateIds(ids.Take(16).ToList(), options, 16);
            offlineRates.Add(offline.Sum(r => r.OutputIds.Length + (r.FinishReason.StopToken is not null ? 1 : 0)) / sw.Elapsed.TotalSeconds);
        }
        double offlineRate = offlineRates.Order().ElementAt(1);

        BenchAdapters.AddSeeded(model, 8);
        model.eval();

        var metrics = new ServerMetrics(name);
        using var engine = new ServingEngine(model, tokenizer, new EngineOptions { MaxBatch = 32, MaxModelLen = 256 }, metrics);
        await using var server = OpenAiServer.Create(engine, new ServerOptions { ServedModelName = name, Port = 0 }, metrics);
        await server.StartAsync();
        using var http = new HttpClient { BaseAddress = server.Url, Timeout = TimeSpan.FromMinutes(10) };
        await Clients(http, prompts, [name], 2, 1, 4); // warm-up

        // Each figure is the median of three runs: a single stream of a tiny model lasts under a second, and one run of
        // it on a shared 2-core machine can be off by a factor of two.
        async Task<Measured> Median(string[] models, int streams, int requests)
        {
            var three = new List<Measured>();
            for (int i = 0; i < 3; i++) three.Add(await Clients(http, prompts, models, streams, requests, tokens));
            return three.OrderBy(m => m.TokensPerSecond).ElementAt(1);
        }
        var runs = new List<Measured>();
        foreach (int streams in new[] { 1, 4, 16, 32 })
            runs.Add(await Median([name], streams, streams == 1 ? Math.Max(2, requestsPerClient) : requestsPerClient));
        var single = await Median(["a0"], 16, requestsPerClient);
        var mixed = await Median([.. Enumerable.Range(0, 8).Select(a => $"a{a}")], 16, requestsPerClient);
        await server.StopAsync();

        Console.WriteLine($"{name} ({parameters / 1e6:F1}M parameters, f32, greedy, {tokens} new tokens per request)");
        Console.WriteLine($"  {"streams",8} {"tok/s",9} {"vs 1",7} {"TTFT p50",10} {"TTFT p99",10}");
        foreach (var r in runs)
            Console.WriteLine($"  {r.Streams,8} {r.TokensPerSecond,9:F1} {r.TokensPerSecond / runs[0].TokensPerSecond,6:F2}x {r.TtftP50 * 1000,8:F1}ms {r.TtftP99 * 1000,8:F1}ms");
        var at16 = runs.Single(r => r.Streams == 16);
        Console.WriteLine($"  served 16 streams vs offline batched generate (16 prompts, batch 16): {at16.TokensPerSecond:F1} / {offlineRate:F1} tok/s = {at16.TokensPerSecond / offlineRate:F2}x");
        Console.WriteLine($"  16 streams over 8 adapters vs 16 streams of one adapter: {mixed.TokensPerSecond:F1} / {single.TokensPerSecond:F1} tok/s = {mixed.TokensPerSecond / single.TokensPerSecond:F2}x");
    }

    /// <summary><paramref name="streams"/> clients, each sending <paramref name="requests"/> streamed greedy completions one after another.</summary>
    internal static async Task<Measured> Clients(HttpClient http, string[] prompts, string[] models, int streams, int requests, int tokens,
        Func<int, int, string>? pick = null)
    {
        var ttft = new System.Collections.Concurrent.ConcurrentBag<double>();
        long generated = 0;
        var sw = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, streams).Select(c => Task.Run(async () =>
        {
            for (int i = 0; i < requests; i++)
            {
                var body = new JsonObject
                {
                    ["model"] = pick?.Invoke(c, i) ?? models[c % models.Length], ["prompt"] = prompts[(c + i * streams) % prompts.Length], ["max_tokens"] = tokens,
                    ["temperature"] = 0, ["stream"] = true, ["stream_options"] = new JsonObject { ["include_usage"] = true },
                };
                var start = Stopwatch.GetTimestamp();
                using var message = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json") };
                using var response = await http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead);
                response.EnsureSuccessStatusCode();
                using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
                bool first = true;
                while (await reader.ReadLineAsync() is { } line)
                {
                    if (!line.StartsWith("data: {", StringComparison.Ordinal)) continue;
                    if (first) { ttft.Add(Stopwatch.GetElapsedTime(start).TotalSeconds); first = false; }
                    if (JsonNode.Parse(line[6..])!["usage"] is JsonObject usage)
                        Interlocked.Add(ref generated, usage["completion_tokens"]!.GetValue<int>());
                }
            }
        })));
        double seconds = sw.Elapsed.TotalSeconds;
        var sorted = ttft.Order().ToArray();
        double Percentile(double p) => sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];
        return new Measured(streams, generated / seconds, Percentile(0.5), Percentile(0.99));
    }

    private static string? Value(string[] args, string flag)
    {
        int i = Array.IndexOf(args, flag);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    private static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "FinQLoRA.slnx"))) return dir.FullName;
        return Directory.GetCurrentDirectory();
    }
}
