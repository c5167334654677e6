using System.Diagnostics;
using System.Globalization;
using FinQLoRA.Adapters;
using FinQLoRA.Demo;
using FinQLoRA.Formats.Gguf;
using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Quantization.Gemv;
using LLama;
using LLama.Native;
using static TorchSharp.torch;

namespace FinQLoRA.Bench;

/// <summary>
/// <c>bench generate --quantized</c>: greedy decode tokens/s of our 4-bit (NF4, double-quantized) and 8-bit (LLM.int8)
/// models against llama.cpp's Q4_0 and Q8_0 made from the same random weights (our BF16 GGUF, quantized by llama.cpp's
/// own quantizer; once with its default head type and once with the head kept bf16 like ours), at batch 1 and 4, on a 76M-parameter and a Llama-3.2-1B-shaped random Llama. Ours runs in bf16
/// with the fused gemv (<see cref="FusedGemv"/>) and without it (<c>FINQLORA_FUSED_GEMV=off</c>: dequantize-then-matmul),
/// and with one rank-8 adapter on every projection, so before/after and the adapter's cost come from the same run.
/// Every figure is the median of interleaved rounds (each engine once per round, the order reversed each round).
/// </summary>
public static class QuantizedGenerationBench
{
    public const string Flag = "--quantized";
    public const string Help = "--quantized: decode tok/s of our 4/8-bit models (fused gemv on/off, with/without an adapter) vs llama.cpp Q4_0/Q8_0 on the same weights (its default head type, and the head kept bf16 as ours), 76M and 1B-shaped [--quick] [--shape 76m|1b] [--decode N] [--repeats N] [--threads N] [--shared DIR]; --kernel: one projection's product alone, fused vs dequantize-then-matmul";

    private sealed record Options(bool Quick, string? Shape, int Decode, int Repeats, int Threads, int Prompt, string Shared, bool KernelOnly);

    private sealed record Row(string Model, int Bits, int Batch, double Fused, double Unfused, double FusedAdapter, double Llama, double VsLlama,
        double Llama16Head, double VsLlama16Head, double AdapterShare, double? Fp32Managed = null, double? Fp32VsLlama = null);

    private const string Fused = "ours fused", Unfused = "ours unfused", FusedAdapter = "ours fused + adapter", Llama = "llama.cpp",
        Llama16Head = "llama.cpp 16-bit head", Fp32Managed = "ours fp32 managed step";

    /// <summary>ggml's type id of bf16 (<c>GGML_TYPE_BF16</c>), which LLamaSharp 0.30's <see cref="GGMLType"/> does not name.</summary>
    private const GGMLType GgmlBf16 = (GGMLType)30;

    public static int Run(string[] args)
    {
        var opt = Parse(args.Where(a => a != Flag).ToArray());
        NativeLibraryConfig.All.WithLogCallback((level, message) =>
        {
            if (level == LLamaLogLevel.Error) Console.Error.Write(message);
        });
        // the quantizer's entry point is bound before LLamaSharp's loader has chosen its native library: choose it first
        NativeApi.llama_empty_call();
        set_num_threads(opt.Threads);
        var total = Stopwatch.StartNew();
        if (opt.KernelOnly)
        {
            QuantizedGemvKernelBench.Run(opt.Quick);
            return 0;
        }
        var rows = new List<Row>();
        string temp = Directory.CreateTempSubdirectory("finqlora-qgenbench-").FullName;
        try
        {
            foreach (var (name, config, tokenizer) in Shapes(opt))
            {
                if (opt.Shape is { } only && !name.Contains(only, StringComparison.OrdinalIgnoreCase)) continue;
                rows.AddRange(MeasureShape(name, config, tokenizer, Path.Combine(temp, name), opt));
            }
        }
        finally
        {
            // our own temp folder from CreateTempSubdirectory: the random checkpoints and GGUFs written above
            Directory.Delete(temp, recursive: true);
        }
        PrintTable(rows, opt);
        Console.WriteLine($"total {total.Elapsed.TotalSeconds:F0} s");
        return 0;
    }

    private static Options Parse(string[] args)
    {
        bool quick = args.Contains("--quick"), kernel = args.Contains("--kernel");
        string? shape = null;
        int? decode = null, repeats = null;
        int threads = 2, prompt = 16;
        string shared = Path.GetFullPath(Path.Combine(GenerationBench.RepoRoot(), "..", "shared"));
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new UserInputException($"{args[i]} needs a value");
            int NextInt()
            {
                string name = args[i], v = Next();
                return int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) && n > 0 ? n : throw new UserInputException($"{name} must be a positive integer (got '{v}')");
            }
            switch (args[i])
            {
                case "--quick" or "--kernel": break;
                case "--shape":
                    shape = Next();
                    if (shape is not ("76m" or "1b")) throw new UserInputException($"--shape must be 76m or 1b (got '{shape}')");
                    break;
                case "--decode": decode = NextInt(); break;
                case "--repeats": repeats = NextInt(); break;
                case "--threads": threads = NextInt(); break;
                case "--prompt": prompt = NextInt(); break;
                case "--shared": shared = Path.GetFullPath(Next()); break;
                default: throw new UserInputException($"generate {Flag}: unknown option '{args[i]}'; options: {Help}");
            }
        }
        return new Options(quick, shape, decode ?? (quick ? 8 : 32), repeats ?? (quick ? 1 : 3), threads, prompt, shared, kernel);
    }

    private static IEnumerable<(string Name, ModelConfig Config, string Tokenizer)> Shapes(Options opt)
    {
        string stories = Path.Combine(opt.Shared, "models", "stories260K-hf");
        string llama3 = Path.Combine(opt.Shared, "models", "llama-3.1-tokenizer");
        foreach (string folder in new[] { stories, llama3 })
            if (!Directory.Exists(folder)) throw new UserInputException($"{folder}: not found; pass --shared <folder holding models/>");
        yield return ("random-76M", new ModelConfig
        {
            HiddenSize = 768, IntermediateSize = 2048, NumLayers = 12, NumHeads = 12, NumKvHeads = 4, HeadDim = 64,
            VocabSize = 512, MaxPositionEmbeddings = 2048, RmsNormEps = 1e-5, RopeTheta = 10000.0,
            TieWordEmbeddings = false, BosTokenId = 1, EosTokenIds = [2], TorchDtype = "bfloat16",
        }, stories);
        // Llama 3.2 1B's shapes (its RoPE scaling left out: it changes no cost)
        yield return ("random-1B", new ModelConfig
        {
            HiddenSize = 2048, IntermediateSize = 8192, NumLayers = 16, NumHeads = 32, NumKvHeads = 8, HeadDim = 64,
            VocabSize = 128256, MaxPositionEmbeddings = 2048, RmsNormEps = 1e-5, RopeTheta = 500000.0,
            TieWordEmbeddings = true, BosTokenId = 128000, EosTokenIds = [128001], TorchDtype = "bfloat16",
        }, llama3);
    }

    private static IEnumerable<Row> MeasureShape(string name, ModelConfig config, string tokenizerFolder, string folder, Options opt)
    {
        var sw = Stopwatch.StartNew();
        string hf = Path.Combine(folder, "hf");
        RandomLlama.WriteHfFolder(config, hf, seed: 42, dtype: ScalarType.BFloat16);
        foreach (string file in new[] { "tokenizer.json", "tokenizer_config.json" }) File.Copy(Path.Combine(tokenizerFolder, file), Path.Combine(hf, file));
        string bf16Gguf = Path.Combine(folder, "bf16.gguf");
        ModelConverter.HfToGguf(hf, bf16Gguf, GgmlType.BF16);
        var ggufs = new Dictionary<int, string> { [4] = Path.Combine(folder, "q4_0.gguf"), [8] = Path.Combine(folder, "q8_0.gguf") };
        var ggufs16Head = new Dictionary<int, string> { [4] = Path.Combine(folder, "q4_0-bf16-head.gguf"), [8] = Path.Combine(folder, "q8_0-bf16-head.gguf") };
        foreach (int bits in ggufs.Keys)
        {
            var ftype = bits == 4 ? LLamaFtype.MOSTLY_Q4_0 : LLamaFtype.MOSTLY_Q8_0;
            if (!LLamaQuantizer.Quantize(bf16Gguf, ggufs[bits], ftype, nthread: opt.Threads))
                throw new InvalidOperationException($"llama.cpp could not quantize {bf16Gguf} to {ftype}");
            QuantizeKeeping16BitHead(bf16Gguf, ggufs16Head[bits], ftype, opt.Threads);
        }
        File.Delete(bf16Gguf);
        long parameters = ModelLayout.Tensors(config).Sum(t => t.Shape.Aggregate(1L, (x, y) => x * y));
        Console.WriteLine($"{name}: {parameters / 1e6:F0}M parameters, HF folder + Q4_0/Q8_0 GGUFs written in {sw.Elapsed.TotalSeconds:F0} s");

        var rows = new List<Row>();
        foreach (int bits in new[] { 4, 8 })
        {
            sw.Restart();
            using var model = ModelLoading.LoadModel(hf, new ModelLoadOptions { DType = ScalarType.BFloat16 }.WithBits(bits));
            AddAdapter(model);
            using var llama = LLamaWeights.LoadFromFile(GenerationBench.LlamaParams(ggufs[bits], opt.Threads, 1, opt.Prompt, opt.Decode));
            using var llama16Head = LLamaWeights.LoadFromFile(GenerationBench.LlamaParams(ggufs16Head[bits], opt.Threads, 1, opt.Prompt, opt.Decode));
            // The managed single-token step takes 4-bit projections with fp32 activations at batch 1 (no adapter): the
            // same 4-bit weights loaded in fp32, on the 76M shape only (the 1B shape's fp32 tied head alone would read
            // 1 GB a token)
            using var fp32 = bits == 4 && name == "random-76M"
                ? ModelLoading.LoadModel(hf, new ModelLoadOptions { DType = ScalarType.Float32 }.WithBits(bits)) : null;
            Console.WriteLine($"  {name} {bits}-bit: ours and llama.cpp loaded in {sw.Elapsed.TotalSeconds:F0} s");
            foreach (int batch in new[] { 1, 4 })
            {
                var engines = new List<(string Column, GenerationBench.Engine Run)>
                {
                    (Fused, (p, s) => Ours(model, null, fused: true, p, s)),
                    (Unfused, (p, s) => Ours(model, null, fused: false, p, s)),
                    (FusedAdapter, (p, s) => Ours(model, "a", fused: true, p, s)),
                    (Llama, (p, s) => GenerationBench.LlamaCpp(llama, ggufs[bits], opt.Threads, p, s)),
                    (Llama16Head, (p, s) => GenerationBench.LlamaCpp(llama16Head, ggufs16Head[bits], opt.Threads, p, s)),
                };
                if (fp32 is not null && batch == 1) engines.Add((Fp32Managed, (p, s) => GenerationBench.Ours(fp32, p, s, managedStep: true)));
                var runs = GenerationBench.Interleaved($"{name} {bits}-bit b{batch}", engines, GenerationBench.Prompts(batch, opt.Prompt), opt.Decode, opt.Repeats, warmUp: true);
                double tokens = batch * opt.Decode;
                double Rate(string column) => tokens / GenerationBench.Mid(runs[column].Select(t => t.DecodeSeconds));
                // rate of a / rate of b, per round (each round ran both), then the median
                double RoundRatio(string a, string b) => GenerationBench.Mid(runs[a].Zip(runs[b], (x, y) => y.DecodeSeconds / x.DecodeSeconds));
                rows.Add(new Row(name, bits, batch, Rate(Fused), Rate(Unfused), Rate(FusedAdapter), Rate(Llama),
                    RoundRatio(Fused, Llama), Rate(Llama16Head), RoundRatio(Fused, Llama16Head), RoundRatio(FusedAdapter, Fused),
                    runs.ContainsKey(Fp32Managed) ? Rate(Fp32Managed) : null, runs.ContainsKey(Fp32Managed) ? RoundRatio(Fp32Managed, Llama) : null));
            }
        }
        return rows;
    }

    /// <summary>
    /// Q4_0 / Q8_0 as llama.cpp's quantizer makes them, except that the output and token-embedding tensors stay bf16 as
    /// ours do: by default it gives the output tensor Q6_K (for Q4_0) or Q8_0, so per token it reads a smaller head than
    /// ours (on the 1B shape's tied 128,256 × 2048 head: 108 MB of Q6_K against 525 MB of bf16). Rows from this file
    /// compare the same head.
    /// </summary>
    private static void QuantizeKeeping16BitHead(string source, string destination, LLamaFtype ftype, int threads)
    {
        var p = LLamaModelQuantizeParams.Default();
        p.nthread = threads;
        p.ftype = ftype;
        p.output_tensor_type = GgmlBf16;
        p.token_embedding_type = GgmlBf16;
        if (NativeApi.llama_model_quantize(source, destination, ref p) != 0)
            throw new InvalidOperationException($"llama.cpp could not quantize {source} to {ftype} with a bf16 head");
    }

    /// <summary>One rank-8 adapter ("a", inactive until a run names it) on every projection, B random so its delta is real work.</summary>
    private static void AddAdapter(DecoderModel model)
    {
        LoraInjector.Apply(model, new LoraConfig { Rank = 8, Alpha = 16, TargetModules = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"] }, 7, "a");
        using var g = new TorchSharp.torch.Generator(7);
        using (no_grad())
            foreach (var w in LoraInjector.Wrapped(model))
            {
                using var scope = NewDisposeScope();
                w.Lora.Adapters["a"].B.copy_(randn(w.Lora.Adapters["a"].B.shape, generator: g) * 0.02);
            }
        LoraInjector.SetActiveAdapter(model, null);
        model.eval();
    }

    private static GenerationBench.Timing Ours(DecoderModel model, string? adapter, bool fused, int[][] prompts, int steps)
    {
        string? before = Environment.GetEnvironmentVariable(FusedGemv.EnvironmentVariable);
        Environment.SetEnvironmentVariable(FusedGemv.EnvironmentVariable, fused ? null : "off");
        LoraInjector.SetActiveAdapter(model, adapter);
        try
        {
            return GenerationBench.Ours(model, prompts, steps, managedStep: true);
        }
        finally
        {
            LoraInjector.SetActiveAdapter(model, null);
            Environment.SetEnvironmentVariable(FusedGemv.EnvironmentVariable, before);
        }
    }

    private static void PrintTable(List<Row> rows, Options opt)
    {
        Console.WriteLine();
        Console.WriteLine($"decode tokens/s, median of {opt.Repeats} interleaved round(s) after a warm-up round; prompt {opt.Prompt}, {opt.Decode} greedy decode steps; {opt.Threads} threads on each side{(opt.Quick ? "; quick" : "")}");
        Console.WriteLine("ours: bf16 activations; 4-bit = NF4 double-quantized, 8-bit = LLM.int8 (threshold 6); head and embeddings bf16. llama.cpp: Q4_0 / Q8_0 by its own quantizer from the same BF16 weights (its default types for the output tensor), F32 K/V cache");
        Console.WriteLine("llama.cpp 16-bit head: the same quantizer with output_tensor_type and token_embedding_type kept bf16, as ours (the fair comparison of the head)");
        Console.WriteLine("fused/unfused = FINQLORA_FUSED_GEMV on/off; vs llama / vs 16-bit head = median of the rounds' ours-fused / llama.cpp ratios; adapter share = ours fused with a rank-8 adapter on every projection / without");
        string header = $"| {"model",-10} | {"bits",4} | {"batch",5} | {"ours fused",10} | {"ours unfused",12} | {"fused/unfused",13} | {"fused + adapter",15} | {"llama.cpp",9} | {"vs llama",8} | {"llama.cpp 16-bit head",21} | {"vs 16-bit head",14} | {"adapter share",13} |";
        Console.WriteLine(header);
        Console.WriteLine("|" + string.Join("|", header.Split('|')[1..^1].Select(c => new string('-', c.Length))) + "|");
        foreach (var r in rows)
            Console.WriteLine($"| {r.Model,-10} | {r.Bits,4} | {r.Batch,5} | {r.Fused,10:F1} | {r.Unfused,12:F1} | {r.Fused / r.Unfused,13:F2} | {r.FusedAdapter,15:F1} | {r.Llama,9:F1} | {r.VsLlama,8:F2} | {r.Llama16Head,21:F1} | {r.VsLlama16Head,14:F2} | {r.AdapterShare,13:F2} |");
        foreach (var r in rows.Where(r => r.Fp32Managed is not null))
            Console.WriteLine($"{r.Model} {r.Bits}-bit batch {r.Batch}: ours fp32 through the managed single-token step {r.Fp32Managed:F1} tok/s, {r.Fp32VsLlama:F2}x llama.cpp");
    }
}
