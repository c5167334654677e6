using System.Globalization;
using System.Text.Json.Nodes;
using FinQLoRA.Demo;
using FinQLoRA.Models;
using static TorchSharp.torch;

namespace FinQLoRA.Bench;

/// <summary>
/// <c>train --dp</c>: the same <c>finqlora train</c> run on the ~100M random Llama (the <c>train</c> bench's shapes,
/// stories260K's tokenizer), without and with DP-SGD (Poisson sampling, per-example clipping, noise), each in a fresh
/// process. Prints the training tokens/s and the peak RSS each run recorded in run.json, and their ratios.
/// </summary>
internal static class DpTrainBench
{
    public const string Flag = "--dp";
    public const string Help = "--dp: tokens/s and peak RSS of DP-SGD vs ordinary training on the 100M random model [--steps N --batch B --seq S --bits 4|8|16]";

    private static readonly ModelConfig Model100M = new()
    {
        HiddenSize = 768, IntermediateSize = 2048, NumLayers = 12, NumHeads = 12, NumKvHeads = 4, HeadDim = 64,
        VocabSize = 16000, MaxPositionEmbeddings = 1024, TieWordEmbeddings = false, BosTokenId = 1, EosTokenIds = [2],
    };

    public static int Run(string[] args)
    {
        string root = BenchProcess.RepoRoot();
        string stories = Path.GetFullPath(Path.Combine(root, "..", "shared", "models", "stories260K-hf"));
        int steps = 8, batch = 4, seqLen = 256, bits = 4;
        for (int i = 0; i < args.Length; i++)
        {
            int Next() => int.Parse(args[++i], CultureInfo.InvariantCulture);
            switch (args[i])
            {
                case Flag: break;
                case "--shared": stories = Path.Combine(args[++i], "models", "stories260K-hf"); break;
                case "--steps": steps = Next(); break;
                case "--batch": batch = Next(); break;
                case "--seq": seqLen = Next(); break;
                case "--bits": bits = Next(); break;
                default: throw new UserInputException($"train {Flag}: unknown option {args[i]}; [--shared DIR] [--steps N] [--batch B] [--seq S] [--bits 4|8|16]");
            }
        }
        if (!File.Exists(Path.Combine(stories, "tokenizer.json"))) throw new UserInputException($"{stories}: no tokenizer.json; pass --shared <folder holding models/>");

        var cli = BenchProcess.CliCommand(root);
        string temp = Directory.CreateTempSubdirectory("finqlora-dpbench-").FullName;
        try
        {
            string model = Path.Combine(temp, "model");
            RandomLlama.WriteHfFolder(Model100M, model, seed: 1, ScalarType.BFloat16);
            foreach (string f in new[] { "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json" })
                File.Copy(Path.Combine(stories, f), Path.Combine(model, f));
            string data = WriteData(temp, examples: 64 * batch, seqLen);
            Console.WriteLine($"random Llama ~100M (hidden {Model100M.HiddenSize}, {Model100M.NumLayers} layers), {bits}-bit base, LoRA r4 q,k,v, bf16 compute; " +
                $"{64 * batch} examples of ~{seqLen} tokens, batch {batch} (DP: Poisson, q = 1/64), {steps} steps; {Environment.ProcessorCount} threads");
            var rows = new List<(string Mode, double TokensPerSecond, long PeakRss, double Seconds)>();
            foreach (bool dp in new[] { false, true })
            {
                string run = Path.Combine(temp, dp ? "dp" : "plain");
                string[] train = ["train", "--model", model, "--data", data, "--out", run, "--bits", bits.ToString(CultureInfo.InvariantCulture), "--rank", "4",
                    "--batch-size", batch.ToString(CultureInfo.InvariantCulture), "--max-seq-len", seqLen.ToString(CultureInfo.InvariantCulture),
                    "--max-steps", steps.ToString(CultureInfo.InvariantCulture), "--save-every", "0", "--warmup-steps", "0", "--log-every", "100"];
                BenchProcess.Run(cli, dp ? [.. train, "--dp", "--dp-noise-multiplier", "1.0", "--dp-max-grad-norm", "1.0"] : train);
                var record = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "run.json")))!;
                rows.Add((dp ? "DP-SGD (per-example clip + noise)" : "ordinary (AdamW, global clip)", record["tokens_per_second"]!.GetValue<double>(),
                    record["peak_rss_bytes"]!.GetValue<long>(), record["train_seconds"]!.GetValue<double>()));
                Console.Error.WriteLine($"  {(dp ? "dp" : "plain")}: {record["tokens_per_second"]} tok/s");
            }
            Console.WriteLine();
            Console.WriteLine("| training | tokens/s | train s | peak RSS |");
            Console.WriteLine("|---|---|---|---|");
            foreach (var r in rows) Console.WriteLine($"| {r.Mode} | {r.TokensPerSecond:F0} | {r.Seconds:F1} | {r.PeakRss / 1048576.0:F0} MiB |");
            Console.WriteLine($"DP vs ordinary tokens/s: {rows[1].TokensPerSecond / rows[0].TokensPerSecond:F2}x (goal >= 0.6x); peak RSS: {(double)rows[1].PeakRss / rows[0].PeakRss:F2}x");
            return 0;
        }
        finally
        {
            Directory.Delete(temp, recursive: true); // the temp folder this run made (model, data, both runs)
        }
    }

    /// <summary>Context/target lines of about <paramref name="seqLen"/> tokens with the 512-token stories260K tokenizer.</summary>
    private static string WriteData(string dir, int examples, int seqLen)
    {
        string[] words = ["revenue", "margin", "guidance", "shares", "quarter", "bank", "loan", "rate", "profit", "outlook"];
        string[] labels = ["positive", "negative", "neutral"];
        var rng = new Random(5);
        var lines = new List<string>();
        for (int i = 0; i < examples; i++)
        {
            var text = new System.Text.StringBuilder("Sentiment of: ");
            while (text.Length < seqLen * 0.8) text.Append(words[rng.Next(words.Length)]).Append(' ');
            lines.Add(new JsonObject { ["context"] = text + "\nAnswer: ", ["target"] = labels[i % 3] }.ToJsonString());
        }
        string path = Path.Combine(dir, "train.jsonl");
        File.WriteAllLines(path, lines);
        return path;
    }
}
