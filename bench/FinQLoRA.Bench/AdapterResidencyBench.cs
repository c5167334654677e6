using FinQLoRA.Adapters;
using FinQLoRA.Loading;
using FinQLoRA.Server;
using static TorchSharp.torch;

namespace FinQLoRA.Bench;

/// <summary>
/// Adapters on demand (<c>bench serve --only adapters</c>): served tokens/s of 16 greedy streams whose requests pick an
/// adapter uniformly at random among 64 registered adapters with 8 device slots (<c>--max-loras 8</c>, the rest read
/// on first use and kept in host memory as <c>--max-cpu-loras</c> allows), against the same clients over 8 registered
/// adapters that all stay on the device. Same model, prompts and seeds, one run; medians of three. The goal is
/// 0.7x or better.
/// </summary>
internal static class AdapterResidencyBench
{
    private const int Registered = 64, Slots = 8, Streams = 16;

    public static async Task RunAsync(string modelFolder, string adapterFolder, bool quick)
    {
        int tokens = quick ? 12 : 32, requests = quick ? 2 : 4;
        WriteAdapters(modelFolder, adapterFolder);
        var prompts = Enumerable.Range(0, 32).Select(i => ServeBench.Starts[i % ServeBench.Starts.Length] + (i >= ServeBench.Starts.Length ? $" {i}" : "")).ToArray();

        async Task<(ServeBench.Measured Rate, long Reads)> Serve(int registered, int cpuLoras)
        {
            var adapters = Enumerable.Range(0, registered).Select(i => ($"a{i}", Path.Combine(adapterFolder, $"a{i}"))).ToList();
            await using var host = ServerHost.Open(new ServerHostOptions
            {
                ModelPath = modelFolder, Load = new ModelLoadOptions { DType = ScalarType.Float32 }, Adapters = adapters,
                Server = new ServerOptions { ServedModelName = "random-76M", Port = 0 },
                MaxBatch = 32, MaxModelLen = 256, MaxLoras = Slots, MaxCpuLoras = cpuLoras,
            });
            await host.StartAsync();
            using var http = new HttpClient { BaseAddress = host.Url, Timeout = TimeSpan.FromMinutes(10) };
            string[] names = [.. adapters.Select(a => a.Item1)];
            // The same seeded picks for both servers; uniform over the adapters registered.
            string Pick(int client, int request, int run) => names[new Random(1000 * run + 31 * client + request).Next(names.Length)];
            await ServeBench.Clients(http, prompts, names, 4, 1, 4, (c, i) => Pick(c, i, 99)); // warm-up
            var three = new List<ServeBench.Measured>();
            for (int run = 0; run < 3; run++)
            {
                int r = run;
                three.Add(await ServeBench.Clients(http, prompts, names, Streams, requests, tokens, (c, i) => Pick(c, i, r)));
            }
            long reads = host.Engine.AdapterReads;
            await host.StopAsync();
            return (three.OrderBy(m => m.TokensPerSecond).ElementAt(1), reads);
        }

        var (few, fewReads) = await Serve(Slots, Slots);
        var (many, manyReads) = await Serve(Registered, Slots);
        // vLLM's --max-cpu-loras at the working set: each adapter is read from disk once, then only changes slots
        var (hosted, hostedReads) = await Serve(Registered, Registered);
        Console.WriteLine($"random-76M adapters on demand (f32, greedy, {Streams} streams x {requests} requests, {tokens} new tokens, rank 8 on q/k/v/o, --max-loras {Slots})");
        Console.WriteLine($"  {Registered} registered, --max-cpu-loras {Slots}: {many.TokensPerSecond:F1} tok/s, TTFT p50 {many.TtftP50 * 1000:F0} ms, p99 {many.TtftP99 * 1000:F0} ms, {manyReads} adapter reads");
        Console.WriteLine($"  {Registered} registered, --max-cpu-loras {Registered}: {hosted.TokensPerSecond:F1} tok/s, TTFT p50 {hosted.TtftP50 * 1000:F0} ms, p99 {hosted.TtftP99 * 1000:F0} ms, {hostedReads} adapter reads");
        Console.WriteLine($"  {Slots} registered: {few.TokensPerSecond:F1} tok/s, TTFT p50 {few.TtftP50 * 1000:F0} ms, p99 {few.TtftP99 * 1000:F0} ms, {fewReads} adapter reads");
        Console.WriteLine($"  {Registered} registered vs {Slots}: {many.TokensPerSecond / few.TokensPerSecond:F2}x with --max-cpu-loras {Slots}, {hosted.TokensPerSecond / few.TokensPerSecond:F2}x with --max-cpu-loras {Registered} (goal >= 0.70x)");
    }

    /// <summary>64 PEFT folders of rank 8 on q, k, v, o, B seeded nonzero so that each does real work.</summary>
    private static void WriteAdapters(string modelFolder, string adapterFolder)
    {
        using var model = ModelLoading.LoadModel(modelFolder, new ModelLoadOptions { DType = ScalarType.Float32 });
        var config = new LoraConfig { Rank = 8, Alpha = 16, TargetModules = ["q_proj", "k_proj", "v_proj", "o_proj"] };
        for (int a = 0; a < Registered; a++)
        {
            string name = $"a{a}";
            LoraInjector.Apply(model, config, 100 + a, name);
            using (var g = new Generator((ulong)(200 + a)))
            using (no_grad())
                foreach (var w in LoraInjector.Wrapped(model))
                    if (w.Lora.Adapters.TryGetValue(name, out var adapter))
                        using (NewDisposeScope()) adapter.B.copy_(randn(adapter.B.shape, generator: g) * 0.02);
            PeftAdapterFiles.Save(Path.Combine(adapterFolder, name), model, config, name);
            LoraInjector.DeleteAdapter(model, name);
        }
    }
}
