using FinQLoRA.Loading;
using System.Diagnostics;
using System.Text.Json.Nodes;
using FinQLoRA.Demo;
using FinQLoRA.Models;
using FinQLoRA.Quantization;
using FinQLoRA.Planning;
using FinQLoRA.Runtime;
using static TorchSharp.torch;

namespace FinQLoRA.Bench;

/// <summary>
/// Peak RSS while loading a randomly initialised ~1.1B-parameter Llama (TinyLlama's shape: hidden 2048, intermediate
/// 5632, 22 layers, 32 heads, 4 KV heads, vocab 32000) stored as bf16, at 16, 8 and 4 bits, against the file size.
/// The model is written by one child process and each load runs in its own fresh child, so each VmHWM is one load's
/// peak; a baseline child that only starts .NET and libtorch gives the fixed cost. The temp model is deleted at the end.
/// </summary>
public static class LoadMemoryBench
{
    public const string Help = "peak RSS loading a random 1.1B bf16 Llama at 16/8/4 bits vs its file size [--layers N] [--model DIR (reuse or keep the random model there)] [--bits 16,8,4]";

    public static ModelConfig TinyLlamaShape(int layers) => new()
    {
        HiddenSize = 2048, IntermediateSize = 5632, NumLayers = layers, NumHeads = 32, NumKvHeads = 4, HeadDim = 64,
        VocabSize = 32000, MaxPositionEmbeddings = 2048, TorchDtype = "bfloat16",
    };

    public static int Run(string[] args)
    {
        if (args.Length > 0 && args[0] == "--child-write") return ChildWrite(args[1], int.Parse(args[2]));
        if (args.Length > 0 && args[0] == "--child-load") return ChildLoad(args[1], int.Parse(args[2]));
        if (args.Length > 0 && args[0] == "--child-baseline") return ChildBaseline();

        int layers = 22;
        string? keep = null;
        int[] bitsList = [16, 8, 4];
        for (int i = 0; i < args.Length; i++)
            if (args[i] == "--layers") layers = int.Parse(args[++i]);
            else if (args[i] == "--model") keep = Path.GetFullPath(args[++i]);
            else if (args[i] == "--bits") bitsList = args[++i].Split(',').Select(int.Parse).ToArray();
            else throw new UserInputException($"load: unknown option {args[i]}; {Help}");

        string temp = keep ?? Directory.CreateTempSubdirectory("finqlora-loadbench-").FullName;
        try
        {
            if (!File.Exists(Path.Combine(temp, "config.json")))
            {
                var sw = Stopwatch.StartNew();
                var written = Parse(BenchProcess.RunSelf("load", "--child-write", temp, layers.ToString()));
                Console.WriteLine($"random Llama {written["parameters"]!.GetValue<long>() / 1e9:F3}B parameters written as bf16 in {sw.Elapsed.TotalSeconds:F0} s " +
                                  $"(writer peak RSS {MemoryUsage.Format(written["peak_rss_bytes"]!.GetValue<long>())}); load average {LoadAverage()}");
            }
            long fileBytes = new FileInfo(Path.Combine(temp, "model.safetensors")).Length;
            var baseline = Parse(BenchProcess.RunSelf("load", "--child-baseline"));
            long baseRss = baseline["peak_rss_bytes"]!.GetValue<long>();
            Console.WriteLine($"| load | peak RSS | peak − baseline | ÷ bf16 file | model storage | load s |");
            Console.WriteLine($"| --- | ---: | ---: | ---: | ---: | ---: |");
            Console.WriteLine($"| baseline (.NET + libtorch, no model) | {MemoryUsage.Format(baseRss)} | | | | |");
            foreach (int bits in bitsList)
            {
                var r = Parse(BenchProcess.RunSelf("load", "--child-load", temp, bits.ToString()));
                long peak = r["peak_rss_bytes"]!.GetValue<long>();
                Console.WriteLine($"| {bits}-bit | {MemoryUsage.Format(peak)} | {MemoryUsage.Format(peak - baseRss)} | {(double)(peak - baseRss) / fileBytes:F2} | " +
                                  $"{MemoryUsage.Format(r["storage_bytes"]!.GetValue<long>())} | {r["load_seconds"]!.GetValue<double>():F1} |");
            }
            Console.WriteLine($"bf16 file: {MemoryUsage.Format(fileBytes)} ({fileBytes:N0} bytes); load average {LoadAverage()}");
        }
        finally
        {
            if (keep is null) Directory.Delete(temp, recursive: true);
        }
        return 0;
    }

    private static int ChildWrite(string folder, int layers)
    {
        var config = TinyLlamaShape(layers);
        RandomLlama.WriteHfFolder(config, folder, seed: 1, ScalarType.BFloat16);
        long parameters = 2L * config.VocabSize * config.HiddenSize + (2L * layers + 1) * config.HiddenSize
            + layers * MemoryPlanner.Projections(config).Sum(p => p.In * p.Out);
        Console.WriteLine(new JsonObject { ["parameters"] = parameters, ["peak_rss_bytes"] = MemoryUsage.PeakRssBytes }.ToJsonString());
        return 0;
    }

    private static int ChildLoad(string folder, int bits)
    {
        var sw = Stopwatch.StartNew();
        using var model = ModelLoading.LoadModel(folder, new ModelLoadOptions { DType = ScalarType.BFloat16 }.WithBits(bits));
        double seconds = sw.Elapsed.TotalSeconds;
        long storage = model.parameters().Concat(model.buffers()).Sum(p => p.numel() * p.element_size())
            + model.modules().OfType<IFrozenLinear>().Where(m => m is QuantizedLinear).Sum(m => m.StorageBytes);
        Console.WriteLine(new JsonObject
        {
            ["peak_rss_bytes"] = MemoryUsage.PeakRssBytes, ["rss_after_bytes"] = MemoryUsage.CurrentRssBytes,
            ["storage_bytes"] = storage, ["load_seconds"] = seconds,
        }.ToJsonString());
        return 0;
    }

    /// <summary>The fixed cost every load pays: .NET, TorchSharp and libtorch loaded and one small op run.</summary>
    internal static int ChildBaseline()
    {
        using (var t = ones(16).sum()) _ = t.item<float>();
        Console.WriteLine(new JsonObject { ["peak_rss_bytes"] = MemoryUsage.PeakRssBytes }.ToJsonString());
        return 0;
    }

    /// <summary>The JSON line a child process printed last.</summary>
    internal static JsonObject Parse(string stdout) =>
        JsonNode.Parse(stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Last(l => l.StartsWith('{'))) as JsonObject
        ?? throw new InvalidOperationException($"child printed no JSON: {stdout}");

    public static string LoadAverage() => File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";
}
