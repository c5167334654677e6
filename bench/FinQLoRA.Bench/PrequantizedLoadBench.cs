using System.Diagnostics;
using System.Text.Json.Nodes;
using FinQLoRA.Demo;
using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Quantization;
using FinQLoRA.Runtime;
using static TorchSharp.torch;

namespace FinQLoRA.Bench;

/// <summary>
/// Loading a pre-quantized folder (<c>finqlora quantize --bits 4</c> output of a random Llama with Llama 3.2 1B's
/// shapes: hidden 2048, 16 layers, 128,256 vocabulary) against reading its bytes from the page cache, in one run:
/// <c>cat</c> of its files to /dev/null and a managed read loop are the baseline, then the mapped load (tensors used as
/// stored are views of the file) and the copying load (every tensor read into memory of its own), each in a fresh child
/// process so that its VmHWM is that load's peak. Because a mapped load reads pages only when they are first used, the
/// child also times the first forward (one token, which touches every weight): the mapped load's deferred reading shows
/// up there, against the copying load's forward. Goal: mapped load ≤ 2× cat.
/// </summary>
public static class PrequantizedLoadBench
{
    public const string Flag = "--prequantized";
    public const string Help = "--prequantized: load a pre-quantized 4-bit 1B-shaped folder (mapped and copying) vs cat of its files from the page cache, peak RSS [--quick] [--repeats N] [--model DIR (reuse or keep the folder there)]";

    /// <summary>Llama 3.2 1B's shapes (tied embeddings), random weights.</summary>
    public static ModelConfig Llama32OneBShape(int layers) => new()
    {
        HiddenSize = 2048, IntermediateSize = 8192, NumLayers = layers, NumHeads = 32, NumKvHeads = 8, HeadDim = 64,
        VocabSize = 128256, MaxPositionEmbeddings = 2048, RopeTheta = 500000, TieWordEmbeddings = true,
        BosTokenId = 128000, EosTokenIds = [128001], TorchDtype = "bfloat16",
    };

    public static int Run(string[] args)
    {
        args = [.. args.Where(a => a != Flag)];
        if (args.Length > 0 && args[0] == "--child-write") return ChildWrite(args[1], int.Parse(args[2]));
        if (args.Length > 0 && args[0] == "--child-load") return ChildLoad(args[1], mapped: args[2] == "mapped");
        if (args.Length > 0 && args[0] == "--child-baseline") return LoadMemoryBench.ChildBaseline();

        bool quick = false;
        int? repeats = null;
        string? keep = null;
        for (int i = 0; i < args.Length; i++)
            if (args[i] == "--quick") quick = true;
            else if (args[i] == "--repeats") repeats = int.Parse(args[++i]);
            else if (args[i] == "--model") keep = Path.GetFullPath(args[++i]);
            else throw new UserInputException($"load {Flag}: unknown option {args[i]}; {Help}");
        int layers = quick ? 2 : 16;
        int n = repeats ?? (quick ? 2 : 3);

        string temp = keep ?? Directory.CreateTempSubdirectory("finqlora-mapbench-").FullName;
        try
        {
            string folder = Path.Combine(temp, $"llama32-1b-shape-{layers}l-nf4");
            if (!File.Exists(Path.Combine(folder, "config.json")))
            {
                var sw = Stopwatch.StartNew();
                BenchProcess.RunSelf("load", Flag, "--child-write", folder, layers.ToString());
                Console.WriteLine($"random Llama 3.2 1B shape ({layers} layers) written as bf16 and quantized to NF4 in {sw.Elapsed.TotalSeconds:F0} s");
            }
            var files = Directory.GetFiles(folder).Order(StringComparer.Ordinal).ToArray();
            long bytes = files.Sum(f => new FileInfo(f).Length);
            Console.WriteLine($"folder: {MemoryUsage.Format(bytes)} ({bytes:N0} bytes, {files.Length} files); {n} repeats, best of each; load average {LoadMemoryBench.LoadAverage()}");

            Cat(files); // into the page cache: every figure below reads from it
            double cat = Enumerable.Range(0, n).Min(_ => Cat(files));
            double managed = Enumerable.Range(0, n).Min(_ => ManagedRead(files));
            long baseRss = LoadMemoryBench.Parse(BenchProcess.RunSelf("load", Flag, "--child-baseline"))["peak_rss_bytes"]!.GetValue<long>();
            var mapped = Enumerable.Range(0, n).Select(_ => LoadMemoryBench.Parse(BenchProcess.RunSelf("load", Flag, "--child-load", folder, "mapped"))).ToList();
            var copied = Enumerable.Range(0, n).Select(_ => LoadMemoryBench.Parse(BenchProcess.RunSelf("load", Flag, "--child-load", folder, "copied"))).ToList();

            Console.WriteLine();
            Console.WriteLine("| read or load | seconds (fresh process) | ÷ cat | again in that process, s | ÷ cat | first forward s | RSS after load | of it, file pages mapped | peak RSS − baseline |");
            Console.WriteLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
            Console.WriteLine($"| cat FILES > /dev/null | {cat:F3} | 1.00 | | | | | | |");
            Console.WriteLine($"| managed read loop (1 MiB reads) | {managed:F3} | {managed / cat:F2} | | | | | | |");
            Row("mapped load (default)", mapped, cat, baseRss);
            Row("copying load (MapWeights = false)", copied, cat, baseRss);
            double ratio = Best(mapped, "load_seconds") / cat, warm = Best(mapped, "second_load_seconds") / cat;
            Console.WriteLine($"\nmapped load ÷ cat: {ratio:F2} in a fresh process, {warm:F2} again in it (goal ≤ 2: {(ratio <= 2 ? "met" : warm <= 2 ? "met once the loader's code is compiled" : "not met")}); " +
                              $"copying load ÷ mapped load: {Best(copied, "load_seconds") / Best(mapped, "load_seconds"):F1}; " +
                              $"baseline process (.NET + libtorch) peak RSS {MemoryUsage.Format(baseRss)}; load average {LoadMemoryBench.LoadAverage()}");
        }
        finally
        {
            // only the temp folder this bench created (Directory.CreateTempSubdirectory), never a --model folder
            if (keep is null) Directory.Delete(temp, recursive: true);
        }
        return 0;
    }

    private static void Row(string what, List<JsonObject> runs, double cat, long baseRss)
    {
        double load = Best(runs, "load_seconds"), again = Best(runs, "second_load_seconds");
        Console.WriteLine($"| {what} | {load:F3} | {load / cat:F2} | {again:F3} | {again / cat:F2} | {Best(runs, "forward_seconds"):F3} | " +
                          $"{MemoryUsage.Format(runs.Min(r => r["rss_after_load_bytes"]!.GetValue<long>()))} | {MemoryUsage.Format(runs.Min(r => r["file_rss_after_load_bytes"]!.GetValue<long>()))} | {MemoryUsage.Format(runs.Min(r => r["peak_rss_bytes"]!.GetValue<long>()) - baseRss)} |");
    }

    private static double Best(List<JsonObject> runs, string key) => runs.Min(r => r[key]!.GetValue<double>());

    /// <summary>Seconds for <c>cat FILES &gt; /dev/null</c> (the start of sh and cat included, a few ms).</summary>
    private static double Cat(string[] files)
    {
        var psi = new ProcessStartInfo("sh") { UseShellExecute = false };
        foreach (string a in new[] { "-c", "cat \"$@\" > /dev/null", "sh" }.Concat(files)) psi.ArgumentList.Add(a);
        var sw = Stopwatch.StartNew();
        using var p = Process.Start(psi)!;
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"cat exited with {p.ExitCode}");
        return sw.Elapsed.TotalSeconds;
    }

    /// <summary>Seconds for this process to read the files in 1 MiB reads.</summary>
    private static double ManagedRead(string[] files)
    {
        var buffer = new byte[1 << 20];
        var sw = Stopwatch.StartNew();
        foreach (string f in files)
        {
            using var s = new FileStream(f, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
            while (s.Read(buffer) > 0) { }
        }
        return sw.Elapsed.TotalSeconds;
    }

    private static int ChildWrite(string folder, int layers)
    {
        // the bf16 source goes into a temp folder of this child's own (never beside a --model folder, where a folder
        // of that name could be the user's); only the quantized copy is measured
        string bf16 = Directory.CreateTempSubdirectory("finqlora-mapbench-bf16-").FullName;
        try
        {
            RandomLlama.WriteHfFolder(Llama32OneBShape(layers), bf16, seed: 1, ScalarType.BFloat16);
            CheckpointQuantizer.Run(bf16, folder, QuantizationOptions.Nf4);
        }
        finally
        {
            Directory.Delete(bf16, recursive: true); // the CreateTempSubdirectory folder made above
        }
        return 0;
    }

    private static int ChildLoad(string folder, bool mapped)
    {
        var options = new ModelLoadOptions { DType = ScalarType.BFloat16, MapWeights = mapped };
        // libtorch's own start (about 0.2 s, paid by every command whatever it loads) is not part of the load
        using (var t = ones(16).sum()) _ = t.item<float>();
        var sw = Stopwatch.StartNew();
        var model = ModelLoading.LoadModel(folder, options);
        double load = sw.Elapsed.TotalSeconds;
        long rssAfterLoad = MemoryUsage.CurrentRssBytes;
        long fileRssAfterLoad = FileRssBytes(Path.Combine(folder, "model.safetensors"));
        sw.Restart();
        using (no_grad())
        using (var ids = tensor(new long[] { 128000 }).unsqueeze(0))
        using (var logits = model.Forward(ids))
            _ = logits.sum().item<float>();
        double forward = sw.Elapsed.TotalSeconds;
        long peak = MemoryUsage.PeakRssBytes; // one model, loaded and used once
        model.Dispose();
        // the same load again in this process: no JIT compilation or first calls into libtorch (what a server that
        // loads a second model pays)
        sw.Restart();
        ModelLoading.LoadModel(folder, options).Dispose();
        double again = sw.Elapsed.TotalSeconds;
        Console.WriteLine(new JsonObject
        {
            ["load_seconds"] = load, ["second_load_seconds"] = again, ["forward_seconds"] = forward, ["rss_after_load_bytes"] = rssAfterLoad, ["file_rss_after_load_bytes"] = fileRssAfterLoad,
            ["peak_rss_bytes"] = peak,
        }.ToJsonString());
        return 0;
    }

    /// <summary>How much of <paramref name="path"/> is resident in this process through its mappings (the Rss lines of
    /// /proc/self/smaps under that file's entries): the pages a mapped load has read so far.</summary>
    private static long FileRssBytes(string path)
    {
        string full = Path.GetFullPath(path);
        long total = 0;
        bool inFile = false;
        foreach (string line in File.ReadLines("/proc/self/smaps"))
        {
            var fields = line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length > 0 && fields[0].Contains('-') && !fields[0].EndsWith(':')) inFile = fields.Length == 6 && fields[5].Trim() == full;
            else if (inFile && fields.Length >= 2 && fields[0] == "Rss:") total += long.Parse(fields[1]) * 1024;
        }
        return total;
    }
}
