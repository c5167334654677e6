using System.Diagnostics;
using System.Text.Json;
using FinQLoRA.Demo;
using FinQLoRA.Inference.Constraints;
using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Serving;
using static TorchSharp.torch;

namespace FinQLoRA.Bench;

/// <summary>
/// What structured outputs cost per decode step: the serving engine's step time at batch 16 with half the rows
/// constrained by a JSON schema, against 16 free rows, same model, same run, as a ratio (goal ≤ 1.10). Masks are warm
/// (a first mixed run fills the per-state cache; the measured runs visit the same states, being greedy). The step time
/// is the median time between two tokens of a row while all 16 rows run; rounds alternate free and mixed so that
/// drift of a shared machine hits both. The schema's string has a minLength that no 48-token answer reaches, so that no
/// constrained row finishes early. Run on the 76M random Llama of <see cref="ServeBench"/> (vocabulary 512) and, when
/// ../shared has it, on the same body with Llama 3.1's 128,256-token vocabulary (where a mask is 128k entries).
/// </summary>
public static class ConstrainedDecodingBench
{
    private const int Rows = 16, Tokens = 48, Rounds = 5;
    private const string Schema = """
        {"type":"object","properties":{"id":{"type":"integer"},"side":{"enum":["buy","sell"]},"note":{"type":"string","minLength":120}},"required":["id","side","note"]}
        """;

    public const string Help = "decode step at batch 16, half the rows under a JSON schema vs all free (goal <= 1.10x) [--quick] [--threads N] [--shared DIR]; also the end of 'serve'";

    /// <summary>On its own (<c>bench constrained</c>); <see cref="ServeBench"/> runs it at its end.</summary>
    public static int Run(string[] args)
    {
        int i = Array.IndexOf(args, "--threads");
        set_num_threads(i >= 0 ? int.Parse(args[i + 1], System.Globalization.CultureInfo.InvariantCulture) : 2);
        int s = Array.IndexOf(args, "--shared");
        string shared = s >= 0 ? args[s + 1] : Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", "..", "..", "shared"));
        if (!Directory.Exists(Path.Combine(shared, "models"))) throw new UserInputException($"{shared}: no models/ folder; pass --shared <folder holding models/>");
        Run(shared, args.Contains("--quick"));
        return 0;
    }

    public static void Run(string shared, bool quick)
    {
        Console.WriteLine($"constrained decoding, decode step at batch {Rows} ({Rows / 2} rows under a JSON schema) vs {Rows} free rows; CPU: {CpuName()}, {get_num_threads()} threads");
        string temp = Directory.CreateTempSubdirectory("finqlora-constrainedbench-").FullName;
        try
        {
            string stories = Path.Combine(shared, "models", "stories260K-hf");
            Measure("random-76M, vocabulary 512", Write(temp, "v512", 512, Path.Combine(stories, "tokenizer.json"), Path.Combine(stories, "tokenizer_config.json")), quick);
            string llama3 = Path.Combine(shared, "models", "llama-3.1-tokenizer");
            if (!quick && Directory.Exists(llama3))
                Measure("random Llama (76M body), Llama 3.1 vocabulary 128,256", Write(temp, "v128k", 128256, Path.Combine(llama3, "tokenizer.json"), Path.Combine(llama3, "tokenizer_config.json")), quick);
        }
        finally
        {
            // the fresh folder CreateTempSubdirectory made above, holding only the models this bench wrote: never an
            // input or a folder the user named
            Directory.Delete(temp, recursive: true);
        }
    }

    private static string Write(string temp, string name, int vocab, params string[] tokenizerFiles)
    {
        var config = new ModelConfig
        {
            HiddenSize = 768, IntermediateSize = 2048, NumLayers = 12, NumHeads = 12, NumKvHeads = 4, HeadDim = 64,
            VocabSize = vocab, MaxPositionEmbeddings = 2048, BosTokenId = 1, EosTokenIds = [2], TieWordEmbeddings = vocab > 512,
        };
        string folder = Path.Combine(temp, name);
        RandomLlama.WriteHfFolder(config, folder, seed: 42);
        foreach (string file in tokenizerFiles) File.Copy(file, Path.Combine(folder, Path.GetFileName(file)));
        return folder;
    }

    private static void Measure(string name, string folder, bool quick)
    {
        var tokenizer = ModelLoading.LoadTokenizer(folder);
        using var model = ModelLoading.LoadModel(folder, new ModelLoadOptions { DType = ScalarType.Float32 });
        var observer = new StepClock();
        using var engine = new ServingEngine(model, tokenizer, new EngineOptions { MaxBatch = Rows, MaxModelLen = 256 }, observer);
        var clock = Stopwatch.StartNew();
        using var schema = JsonDocument.Parse(Schema);
        var constraint = ConstraintCache.For(tokenizer).Get(ConstraintSpec.JsonSchema(schema.RootElement));
        double compileMs = clock.Elapsed.TotalMilliseconds;
        string[] starts = ["Once upon a time", "The little dog", "Lily went to the park", "Tom had a big", "One day, a girl named Sue", "The sun was", "There was a cat", "Ben and his mom"];
        var prompts = Enumerable.Range(0, Rows).Select(i => tokenizer.Encode($"{starts[i % starts.Length]} {i}", addBos: true)).ToArray();

        double RunOnce(bool mixed)
        {
            observer.Reset();
            var readers = prompts.Select((p, i) => engine.Submit(new EngineRequest(p, null, new SamplingParams
            {
                MaxTokens = Tokens, Temperature = 0, Constraint = mixed && i % 2 == 1 ? constraint : null,
            }))).ToList();
            var results = Task.WhenAll(readers.Select(r => EngineCompletion.ReadAsync(r))).GetAwaiter().GetResult();
            if (mixed && results.Where((_, i) => i % 2 == 1).Any(r => r.FinishReason.Value != "length"))
                throw new InvalidOperationException("a constrained row finished early: the measurement would mix batch sizes");
            return observer.MedianAtFullBatch();
        }

        clock.Restart();
        RunOnce(mixed: true); // warm: every state the greedy rows visit gets its mask
        double warmS = clock.Elapsed.TotalSeconds;
        RunOnce(mixed: false);
        var free = new List<double>();
        var mixedSteps = new List<double>();
        for (int r = 0; r < (quick ? 2 : Rounds); r++)
        {
            free.Add(RunOnce(mixed: false));
            mixedSteps.Add(RunOnce(mixed: true));
        }
        double f = Median(free), m = Median(mixedSteps);
        Console.WriteLine($"  {name}: step {f * 1000:F1} ms free, {m * 1000:F1} ms mixed = {m / f:F3}x (goal <= 1.10); schema compiled in {compileMs:F0} ms ({constraint.NfaStates} NFA states), first mixed run with cold masks {warmS:F1} s");
    }

    private static double Median(List<double> values) => values.Order().ElementAt(values.Count / 2);

    private static string CpuName()
    {
        try
        {
            return File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown";
        }
        catch (IOException) { return "unknown"; }
    }

    /// <summary>Times between two tokens of a row, kept only while the batch is full.</summary>
    private sealed class StepClock : IEngineObserver
    {
        private readonly List<double> _steps = [];
        private volatile int _running;

        public void Reset()
        {
            lock (_steps) _steps.Clear();
        }

        public double MedianAtFullBatch()
        {
            lock (_steps) return _steps.Count == 0 ? double.NaN : _steps.Order().ElementAt(_steps.Count / 2);
        }

        public void QueueDepth(int waiting) { }
        public void BatchSize(int running) => _running = running;
        public void FirstToken(string? adapter, TimeSpan sinceSubmit) { }
        public void NextToken(string? adapter, TimeSpan sincePrevious)
        {
            if (_running == Rows)
                lock (_steps) _steps.Add(sincePrevious.TotalSeconds);
        }
        public void Finished(string? adapter, int promptTokens, int completionTokens) { }
    }
}
