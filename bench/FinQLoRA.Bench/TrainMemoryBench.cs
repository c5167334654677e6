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
/// The memory planner's CPU training estimate (<c>finqlora memory --train --device cpu</c>) against the peak RSS
/// (VmHWM, run.json's <c>peak_rss_bytes</c>) of real <c>finqlora train --max-steps 2</c> runs, each its own process,
/// on stories260K and two random Llamas (~20M, ~100M) at different bits, batch, sequence length, rank and targets, and
/// one random ~20M model per family (its config.json keys, so every extra tensor and switch of the family is there:
/// Mistral's window, Qwen2's biases, Qwen3's q/k norms, Gemma's sandwich norms, GELU, soft-caps and written-out attention,
/// Phi-3's fused projections) at one small 4-bit shape.
/// A <c>finqlora version</c> run under <c>/usr/bin/time -v</c> gives the measured .NET + libtorch baseline.
/// </summary>
public static class TrainMemoryBench
{
    public const string Help = "planner (memory --train --device cpu) vs measured peak RSS of finqlora train --max-steps 2 [--shared DIR] [--only NAME] [--models DIR (write random models there once and keep them)]";

    /// <param name="Targets">train's --targets; null means q_proj,k_proj,v_proj (or "all" with <paramref name="AllLinear"/>)</param>
    private sealed record Case(string Name, ModelConfig? Random, int Bits, int Batch, int SeqLen, int Rank, bool AllLinear, string? Targets = null)
    {
        public string TargetArgument => Targets ?? (AllLinear ? "all" : "q_proj,k_proj,v_proj");
    }

    private static readonly ModelConfig Random20M = new()
    {
        HiddenSize = 512, IntermediateSize = 1376, NumLayers = 6, NumHeads = 8, NumKvHeads = 4, HeadDim = 64, VocabSize = 512,
        MaxPositionEmbeddings = 1024, TorchDtype = "bfloat16", BosTokenId = 1, EosTokenIds = [2],
    };

    private static readonly ModelConfig Random100M = new()
    {
        HiddenSize = 768, IntermediateSize = 2048, NumLayers = 14, NumHeads = 12, NumKvHeads = 12, HeadDim = 64, VocabSize = 512,
        MaxPositionEmbeddings = 1024, TorchDtype = "bfloat16", BosTokenId = 1, EosTokenIds = [2],
    };

    private static readonly Case[] Cases =
    [
        new("stories260K", null, 4, 4, 128, 8, false),
        new("random-20M", Random20M, 8, 2, 256, 16, true),
        new("random-100M", Random100M, 4, 2, 512, 8, false),
        new("random-100M-16bit", Random100M, 16, 1, 256, 4, false),
        new("mistral-20M", Family("MistralForCausalLM", "mistral", new() { ["sliding_window"] = 128 }), 4, 2, 512, 8, false),
        new("qwen2-20M", Family("Qwen2ForCausalLM", "qwen2", new() { ["rope_theta"] = 1000000.0 }), 4, 2, 512, 8, false),
        new("qwen3-20M", Family("Qwen3ForCausalLM", "qwen3", new() { ["rope_theta"] = 1000000.0, ["head_dim"] = 64 }), 4, 2, 512, 8, false),
        new("gemma2-20M", Family("Gemma2ForCausalLM", "gemma2", new()
        {
            ["hidden_activation"] = "gelu_pytorch_tanh", ["head_dim"] = 64, ["query_pre_attn_scalar"] = 64,
            ["attn_logit_softcapping"] = 50.0, ["final_logit_softcapping"] = 30.0, ["sliding_window"] = 128,
        }), 4, 2, 512, 8, false),
        new("gemma3-20M", Family("Gemma3ForCausalLM", "gemma3_text", new()
        {
            ["hidden_activation"] = "gelu_pytorch_tanh", ["head_dim"] = 64, ["query_pre_attn_scalar"] = 64, ["sliding_window"] = 128,
            ["rope_theta"] = 1000000.0, ["rope_local_base_freq"] = 10000.0,
        }), 4, 2, 512, 8, false),
        new("phi3-20M", Family("Phi3ForCausalLM", "phi3", new() { ["partial_rotary_factor"] = 0.75 }), 4, 2, 512, 8, false, "qkv_proj"),
    ];

    /// <summary>A ~20M model of a family, as its config.json states it (the shape of random-20M, stories' vocabulary).</summary>
    private static ModelConfig Family(string architecture, string modelType, JsonObject keys)
    {
        var o = new JsonObject
        {
            ["architectures"] = new JsonArray(architecture), ["model_type"] = modelType,
            ["hidden_size"] = 512, ["intermediate_size"] = 1376, ["num_hidden_layers"] = 6, ["num_attention_heads"] = 8,
            ["num_key_value_heads"] = 4, ["vocab_size"] = 512, ["max_position_embeddings"] = 1024, ["rms_norm_eps"] = 1e-6,
            ["tie_word_embeddings"] = false, ["bos_token_id"] = 1, ["eos_token_id"] = 2, ["torch_dtype"] = "bfloat16",
        };
        foreach (var (k, v) in keys) o[k] = v?.DeepClone();
        // read back from text, as a config.json file is (an int built in memory does not read as a double)
        return ModelConfig.FromJson((JsonObject)JsonNode.Parse(o.ToJsonString())!, modelType);
    }

    public static int Run(string[] args)
    {
        string root = BenchProcess.RepoRoot();
        string shared = Path.GetFullPath(Path.Combine(root, "..", "shared"));
        string? only = null, models = null;
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == "--shared") shared = args[++i];
            else if (args[i] == "--only") only = args[++i];
            else if (args[i] == "--models") models = Path.GetFullPath(args[++i]);
            else throw new UserInputException($"memory: unknown option {args[i]}; {Help}");
        }
        string stories = Path.Combine(shared, "models", "stories260K-hf");
        if (!Directory.Exists(stories)) throw new UserInputException($"{stories}: not found; pass --shared <folder holding models/>");
        var cli = BenchProcess.CliCommand(root);

        long baseline = TimedMaxRss(cli, ["version"]);
        Console.WriteLine($"baseline: `finqlora version` peak RSS {MemoryUsage.Format(baseline)} (.NET + TorchSharp + libtorch); " +
                          $"planner's CPU runtime constant {MemoryUsage.Format(MemoryPlanner.CpuRuntimeBytes)}; load average {LoadAverage()}");
        Console.WriteLine("| case | params | bits | batch×seq | rank | targets | planned | measured | error | s |");
        Console.WriteLine("| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |");
        string temp = Directory.CreateTempSubdirectory("finqlora-membench-").FullName;
        try
        {
            foreach (var c in Cases.Where(c => only is null || c.Name == only))
            {
                string model = c.Random is null ? stories : WriteRandom(c.Random, Path.Combine(models ?? temp, ModelName(c.Random)), stories);
                var config = ModelConfig.Load(model);
                string data = WriteData(Path.Combine(temp, c.Name + ".jsonl"), c.Batch * 2);
                string outDir = Path.Combine(temp, c.Name + "-run");
                var sw = Stopwatch.StartNew();
                BenchProcess.Run(cli, ["train", "--model", model, "--data", data, "--out", outDir, "--bits", c.Bits.ToString(),
                    "--rank", c.Rank.ToString(), "--targets", c.TargetArgument, "--batch-size", c.Batch.ToString(),
                    "--max-seq-len", c.SeqLen.ToString(), "--max-steps", "2", "--dropout", "0.1", "--save-every", "0", "--warmup-steps", "0", "--seed", "1"]);
                double seconds = sw.Elapsed.TotalSeconds;
                var run = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "run.json")))!;
                long measured = run["peak_rss_bytes"]!.GetValue<long>();
                var plan = Plan(config, c);
                long parameters = ParameterCount(config);
                Console.WriteLine($"| {c.Name} | {parameters / 1e6:F1}M | {c.Bits} | {c.Batch}×{c.SeqLen} | {c.Rank} | {c.TargetArgument} | " +
                                  $"{MemoryUsage.Format(plan.TotalBytes)} | {MemoryUsage.Format(measured)} | {(double)plan.TotalBytes / measured - 1:+0.0%;-0.0%} | {seconds:F0} |");
                foreach (var comp in plan.Components.Where(x => x.Bytes > 0))
                    Console.Error.WriteLine($"    {c.Name} {comp.Name}: {comp.Bytes / 1048576.0:F1} MiB");
                if (c.Random is not null && models is null) Directory.Delete(model, recursive: true);
                Directory.Delete(outDir, recursive: true);
            }
        }
        finally
        {
            Directory.Delete(temp, recursive: true);
        }
        Console.WriteLine($"load average {LoadAverage()}");
        return 0;
    }

    private static MemoryPlan Plan(ModelConfig config, Case c) =>
        MemoryPlanner.Training(config, new QuantizationOptions(Bits: c.Bits),
            new TrainingMemoryOptions(c.Batch, c.SeqLen, c.Rank, FinQLoRA.Adapters.LoraTargets.Resolve(c.TargetArgument, config.Family, "--targets"),
                GradientCheckpointing: false, LoraDropout: 0.1, Device: MemoryDevice.Cpu), c.Name);

    private static long ParameterCount(ModelConfig c) => MemoryPlanner.ParameterCount(c);

    private static string ModelName(ModelConfig c) => $"random-{c.ModelType}-h{c.HiddenSize}-i{c.IntermediateSize}-l{c.NumLayers}";

    /// <summary>A random bf16 Llama with stories260K's tokenizer (vocab 512), so training data tokenizes as for stories.</summary>
    private static string WriteRandom(ModelConfig config, string folder, string stories)
    {
        if (File.Exists(Path.Combine(folder, "tokenizer.json"))) return folder;
        RandomLlama.WriteHfFolder(config, folder, seed: 3, ScalarType.BFloat16);
        foreach (string f in new[] { "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json" })
            File.Copy(Path.Combine(stories, f), Path.Combine(folder, f));
        return folder;
    }

    /// <summary>Examples longer than any --max-seq-len here, so every sequence is cut to exactly max_seq_len tokens.</summary>
    private static string WriteData(string path, int examples)
    {
        string story = string.Concat(Enumerable.Repeat(Story + " ", 8));
        var lines = Enumerable.Range(0, examples).Select(i =>
            new JsonObject { ["context"] = $"Story {i}. " + story, ["target"] = " The end." }.ToJsonString());
        File.WriteAllLines(path, lines);
        return path;
    }

    private const string Story =
        "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends. " +
        "One day, Lily saw a big red ball under a tree. She ran to the ball and picked it up. Her friend Tom came to play with her.";

    /// <summary>Peak RSS of one command, from <c>/usr/bin/time -v</c>'s "Maximum resident set size".</summary>
    private static long TimedMaxRss(IReadOnlyList<string> command, string[] args)
    {
        var psi = new ProcessStartInfo("/usr/bin/time") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        psi.ArgumentList.Add("-v");
        foreach (string a in command.Concat(args)) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        _ = p.StandardOutput.ReadToEndAsync();
        string err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        string line = err.Split('\n').FirstOrDefault(l => l.Contains("Maximum resident set size"))
            ?? throw new InvalidOperationException($"/usr/bin/time printed no maximum RSS:\n{err}");
        return long.Parse(line.Split(':')[1].Trim()) * 1024;
    }

    private static string LoadAverage() => LoadMemoryBench.LoadAverage();
}
