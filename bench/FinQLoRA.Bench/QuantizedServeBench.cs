using System.Diagnostics;
using FinQLoRA.Adapters;
using FinQLoRA.Demo;
using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Quantization.Gemv;
using FinQLoRA.Server;
using FinQLoRA.Serving;
using static TorchSharp.torch;

namespace FinQLoRA.Bench;

/// <summary>
/// <c>bench serve --only quantized</c>: served greedy tokens/s at 1, 4 and 16 streams on a 4-bit (NF4, bf16) random
/// Llama with 4 adapters (the streams cycle through them, so a decode batch mixes adapters), with the fused gemv on and
/// off (<c>FINQLORA_FUSED_GEMV</c>, read per forward, flipped between runs of the same server) — before and after from
/// one run. Llama-3.2-1B's shapes by default; <c>--shape 76m</c> for a quicker check.
/// </summary>
internal static class QuantizedServeBench
{
    public static async Task RunAsync(string shared, bool quick, string shape)
    {
        if (shape is not ("1b" or "76m")) throw new UserInputException($"--shape must be 1b or 76m (got '{shape}')");
        var total = Stopwatch.StartNew();
        bool oneB = shape == "1b";
        var config = oneB
            ? new ModelConfig
            {
                HiddenSize = 2048, IntermediateSize = 8192, NumLayers = 16, NumHeads = 32, NumKvHeads = 8, HeadDim = 64,
                VocabSize = 128256, MaxPositionEmbeddings = 2048, RopeTheta = 500000.0, TieWordEmbeddings = true,
                BosTokenId = 128000, EosTokenIds = [128001], TorchDtype = "bfloat16",
            }
            : new ModelConfig
            {
                HiddenSize = 768, IntermediateSize = 2048, NumLayers = 12, NumHeads = 12, NumKvHeads = 4, HeadDim = 64,
                VocabSize = 512, MaxPositionEmbeddings = 2048, BosTokenId = 1, EosTokenIds = [2], TorchDtype = "bfloat16",
            };
        string tokenizerFolder = Path.Combine(shared, "models", oneB ? "llama-3.1-tokenizer" : "stories260K-hf");
        if (!Directory.Exists(tokenizerFolder)) throw new UserInputException($"{tokenizerFolder}: not found; pass --shared <folder holding models/>");
        string temp = Directory.CreateTempSubdirectory("finqlora-qservebench-").FullName;
        try
        {
            string folder = Path.Combine(temp, "hf");
            RandomLlama.WriteHfFolder(config, folder, seed: 42, dtype: ScalarType.BFloat16);
            foreach (string file in new[] { "tokenizer.json", "tokenizer_config.json" }) File.Copy(Path.Combine(tokenizerFolder, file), Path.Combine(folder, file));
            string name = oneB ? "random-1B-nf4" : "random-76M-nf4";
            var tokenizer = ModelLoading.LoadTokenizer(folder);
            using var model = ModelLoading.LoadModel(folder, new ModelLoadOptions { DType = ScalarType.BFloat16 }.WithBits(4));
            BenchAdapters.AddSeeded(model, 4);
            model.eval();
            Console.WriteLine($"{name}: written, quantized and given 4 adapters in {total.Elapsed.TotalSeconds:F0} s");

            int tokens = quick ? 8 : 24;
            var prompts = ServeBench.Starts;
            string[] adapters = [.. Enumerable.Range(0, 4).Select(a => $"a{a}")];
            var metrics = new ServerMetrics(name);
            using var engine = new ServingEngine(model, tokenizer, new EngineOptions { MaxBatch = 16, MaxModelLen = 256 }, metrics);
            await using var server = OpenAiServer.Create(engine, new ServerOptions { ServedModelName = name, Port = 0 }, metrics);
            await server.StartAsync();
            using var http = new HttpClient { BaseAddress = server.Url, Timeout = TimeSpan.FromMinutes(30) };
            string? before = Environment.GetEnvironmentVariable(FusedGemv.EnvironmentVariable);
            var rows = new List<(int Streams, double Fused, double Unfused)>();
            try
            {
                await ServeBench.Clients(http, prompts, adapters, 2, 1, 4); // warm-up
                foreach (int streams in new[] { 1, 4, 16 })
                {
                    // fused first, then off, then fused again (the mean of the two fused runs brackets the unfused one in time)
                    Environment.SetEnvironmentVariable(FusedGemv.EnvironmentVariable, null);
                    var fusedA = await ServeBench.Clients(http, prompts, adapters, streams, 1, tokens);
                    Environment.SetEnvironmentVariable(FusedGemv.EnvironmentVariable, "off");
                    var unfused = await ServeBench.Clients(http, prompts, adapters, streams, 1, tokens);
                    Environment.SetEnvironmentVariable(FusedGemv.EnvironmentVariable, null);
                    var fusedB = await ServeBench.Clients(http, prompts, adapters, streams, 1, tokens);
                    rows.Add((streams, (fusedA.TokensPerSecond + fusedB.TokensPerSecond) / 2, unfused.TokensPerSecond));
                    Console.WriteLine($"  {streams} streams measured");
                }
            }
            finally
            {
                Environment.SetEnvironmentVariable(FusedGemv.EnvironmentVariable, before);
                await server.StopAsync();
            }
            Console.WriteLine($"{name}, 4 adapters (rank 8 on q, k, v, o; streams cycle through them), greedy, {tokens} new tokens per request, one request per stream");
            Console.WriteLine("| streams | tok/s fused gemv | tok/s FINQLORA_FUSED_GEMV=off | after/before |");
            Console.WriteLine("|---------|------------------|-------------------------------|--------------|");
            foreach (var (streams, fused, unfused) in rows)
                Console.WriteLine($"| {streams,7} | {fused,16:F1} | {unfused,29:F1} | {fused / unfused,11:F2}x |");
            Console.WriteLine($"quantized serve total {total.Elapsed.TotalSeconds:F0} s");
        }
        finally
        {
            // our own temp folder from CreateTempSubdirectory: the random checkpoint written above
            Directory.Delete(temp, recursive: true);
        }
    }
}
