using System.Globalization;
using System.Text.Json.Nodes;
using FinQLoRA.Demo;
using FinQLoRA.Models;
using static TorchSharp.torch;

namespace FinQLoRA.Bench;

/// <summary>
/// <c>train --packing</c>: the same <c>finqlora train</c> run on the real TFNS training set (built from
/// <c>sent_train.csv</c> by <c>data build</c>, free of the test items), with and without sample packing, on a seeded
/// random Llama with Llama 3.1's tokenizer (so the lengths are the real ones). Prints the training tokens/s each run
/// recorded in run.json, their ratio, and the share of batch positions that were padding (from the runs' logs).
/// </summary>
internal static class PackingBench
{
    public const string Flag = "--packing";

    private static readonly ModelConfig Model = new()
    {
        HiddenSize = 256, IntermediateSize = 688, NumLayers = 4, NumHeads = 4, NumKvHeads = 2, HeadDim = 64,
        VocabSize = 128256, MaxPositionEmbeddings = 2048, TieWordEmbeddings = true, BosTokenId = 128000, EosTokenIds = [128001, 128009],
    };

    public static int Run(string[] args)
    {
        string root = BenchProcess.RepoRoot();
        string shared = Path.GetFullPath(Path.Combine(root, "..", "shared"));
        int steps = 20, batch = 8, seqLen = 256;
        for (int i = 0; i < args.Length; i++)
        {
            int Next() => int.Parse(args[++i], CultureInfo.InvariantCulture);
            switch (args[i])
            {
                case Flag: break;
                case "--shared": shared = args[++i]; break;
                case "--steps": steps = Next(); break;
                case "--batch": batch = Next(); break;
                case "--seq": seqLen = Next(); break;
                default: throw new UserInputException($"train {Flag}: unknown option {args[i]}; [--shared DIR] [--steps N] [--batch B] [--seq S]");
            }
        }
        string source = Path.Combine(shared, "data", "tfns", "sent_train.csv");
        string test = Path.Combine(shared, "data", "finlora-test", "tfns_test.jsonl");
        string tokenizer = Path.Combine(shared, "models", "llama-3.1-tokenizer");
        foreach (string p in new[] { source, test, tokenizer })
            if (!File.Exists(p) && !Directory.Exists(p)) throw new UserInputException($"{p}: not found; pass --shared <folder holding data/ and models/>");

        var cli = BenchProcess.CliCommand(root);
        string temp = Directory.CreateTempSubdirectory("finqlora-packbench-").FullName;
        try
        {
            string data = Path.Combine(temp, "tfns_train.jsonl");
            BenchProcess.Run(cli, ["data", "build", "--task", "tfns", "--source", source, "--exclude", test, "--out", data]);
            string model = Path.Combine(temp, "model");
            RandomLlama.WriteHfFolder(Model, model, seed: 1);
            foreach (string f in Directory.EnumerateFiles(tokenizer).Where(f => Path.GetFileName(f).StartsWith("tokenizer", StringComparison.Ordinal) || Path.GetFileName(f) == "special_tokens_map.json"))
                File.Copy(f, Path.Combine(model, Path.GetFileName(f)));
            int examples = File.ReadLines(data).Count();
            Console.WriteLine($"TFNS training set: {examples} examples; random Llama (hidden {Model.HiddenSize}, {Model.NumLayers} layers, Llama 3.1 vocabulary); " +
                $"batch {batch}, max_seq_len {seqLen}, {steps} steps, 16-bit f32, LoRA r4 q,k,v, {Environment.ProcessorCount} cores");

            var rows = new List<(string Mode, double TokensPerSecond, double Seconds, long Tokens, string Padding)>();
            foreach (bool packing in new[] { false, true })
            {
                string run = Path.Combine(temp, packing ? "packed" : "padded");
                string[] train = ["train", "--model", model, "--data", data, "--out", run, "--bits", "16", "--dtype", "f32", "--rank", "4",
                    "--batch-size", batch.ToString(CultureInfo.InvariantCulture), "--max-seq-len", seqLen.ToString(CultureInfo.InvariantCulture),
                    "--max-steps", steps.ToString(CultureInfo.InvariantCulture), "--save-every", "0", "--warmup-steps", "0", "--log-every", "100"];
                string stdout = BenchProcess.Run(cli, packing ? [.. train, "--packing"] : train);
                var record = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "run.json")))!;
                // "packing: … padding 31.2 % → 2.0 % of the batch positions": before (these batches unpacked) and after
                string padding = packing
                    ? stdout.Split('\n').First(l => l.StartsWith("packing: ", StringComparison.Ordinal)).Split("padding ")[1].Split(" of")[0]
                    : "";
                rows.Add((packing ? "packed" : "padded (length-grouped)", record["tokens_per_second"]!.GetValue<double>(),
                    record["train_seconds"]!.GetValue<double>(), record["tokens_seen"]!.GetValue<long>(), padding));
                Console.Error.WriteLine($"  {(packing ? "packed" : "padded")}: {record["tokens_per_second"]} tok/s");
            }
            Console.WriteLine();
            var fractions = rows[1].Padding.Split(" → ");
            Console.WriteLine("| batches | tokens/s | train s | tokens trained | padding share of batch positions |");
            Console.WriteLine("|---|---|---|---|---|");
            for (int i = 0; i < rows.Count; i++)
                Console.WriteLine($"| {rows[i].Mode} | {rows[i].TokensPerSecond:F0} | {rows[i].Seconds:F1} | {rows[i].Tokens:N0} | {fractions[i]} |");
            Console.WriteLine($"packing vs padded tokens/s: {rows[1].TokensPerSecond / rows[0].TokensPerSecond:F2}x");
            return 0;
        }
        finally
        {
            Directory.Delete(temp, recursive: true);
        }
    }
}
