using FinQLoRA.Data.Tokenization;
using FinQLoRA.Models;
using static TorchSharp.torch;

namespace FinQLoRA.Inference;

/// <summary>
/// Batched generation with a KV cache. Prompts of different lengths are left-padded so that every sequence's
/// next token sits in the last column; padding is masked out of attention and does not shift positions.
/// </summary>
public sealed class TextGenerator(LlamaModel model, ITextTokenizer tokenizer)
{
    public LlamaModel Model => model;
    public ITextTokenizer Tokenizer => tokenizer;

    public IReadOnlyList<GenerationResult> Generate(IReadOnlyList<string> prompts, GenerationOptions options, int batchSize = 8) =>
        GenerateIds(prompts.Select(p => tokenizer.Encode(p, options.AddBos)).ToList(), options, batchSize);

    public IReadOnlyList<GenerationResult> GenerateIds(IReadOnlyList<int[]> prompts, GenerationOptions options, int batchSize = 8)
    {
        options.Validate();
        if (batchSize < 1) throw new UserInputException($"--batch-size must be at least 1 (got {batchSize})");
        int context = model.Config.MaxPositionEmbeddings;
        for (int i = 0; i < prompts.Count; i++)
        {
            if (prompts[i].Length == 0) throw new UserInputException($"prompt {i} is empty after tokenization");
            if (prompts[i].Length + options.MaxNewTokens > context)
                throw new UserInputException($"prompt {i} has {prompts[i].Length} tokens; with --max-new-tokens {options.MaxNewTokens} that exceeds the model's context of {context} (max_position_embeddings); shorten the prompt or lower --max-new-tokens");
        }
        var results = new GenerationResult[prompts.Count];
        for (int start = 0; start < prompts.Count; start += batchSize)
        {
            var batch = Enumerable.Range(start, Math.Min(batchSize, prompts.Count - start)).ToArray();
            var outputs = GenerateBatch(batch.Select(i => prompts[i]).ToArray(), options);
            for (int j = 0; j < batch.Length; j++) results[batch[j]] = outputs[j];
        }
        return results;
    }

    private GenerationResult[] GenerateBatch(int[][] prompts, GenerationOptions options)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var device = model.Device;
        int b = prompts.Length;
        int longest = prompts.Max(p => p.Length);
        var stopIds = tokenizer.EosIds.Concat(options.StopIds).ToHashSet();

        // Left padding: [pad … pad, prompt]; the mask marks real tokens.
        var ids = new long[b * longest];
        var mask = new long[b * longest];
        for (int r = 0; r < b; r++)
        {
            int offset = longest - prompts[r].Length;
            for (int c = 0; c < longest; c++)
            {
                ids[r * longest + c] = c < offset ? tokenizer.PadId : prompts[r][c - offset];
                mask[r * longest + c] = c < offset ? 0 : 1;
            }
        }
        var input = tensor(ids, [b, longest], device: device);
        var padMask = tensor(mask, [b, longest], device: device);
        using var cache = new KvCache(model.Config, b, longest + options.MaxNewTokens, model.ComputeDType, device);
        using var sampler = new TokenSampler(options, device);

        var generated = Enumerable.Range(0, b).Select(_ => new List<int>()).ToArray();
        var finish = new string?[b];
        var texts = new string[b];
        var logits = model.Forward(input, padMask, cache, lastOnly: true);
        for (int step = 0; step < options.MaxNewTokens; step++)
        {
            using var stepScope = NewDisposeScope();
            var next = sampler.Next(logits.select(1, 0));
            long[] chosen = next.cpu().data<long>().ToArray();
            for (int r = 0; r < b; r++)
            {
                if (finish[r] != null) continue;
                int token = (int)chosen[r];
                if (stopIds.Contains(token)) { finish[r] = "eos"; continue; }
                generated[r].Add(token);
                if (options.StopStrings.Count > 0 && CutAtStopString(tokenizer.Decode(generated[r])) is { } cut)
                {
                    texts[r] = cut;
                    finish[r] = "stop_string";
                }
            }
            if (finish.All(f => f != null) || step == options.MaxNewTokens - 1) break;
            // Finished rows keep receiving a pad token; their outputs are ignored.
            var feed = tensor(chosen.Select((t, r) => finish[r] != null ? tokenizer.PadId : t).ToArray(), [b, 1], device: device);
            padMask = cat([padMask, ones([b, 1], ScalarType.Int64, device)], 1).MoveToOuterDisposeScope();
            logits.Dispose();
            logits = model.Forward(feed, padMask, cache, lastOnly: true).MoveToOuterDisposeScope();
        }

        string? CutAtStopString(string text)
        {
            int best = -1;
            foreach (string s in options.StopStrings)
            {
                int at = text.IndexOf(s, StringComparison.Ordinal);
                if (at >= 0 && (best < 0 || at < best)) best = at;
            }
            return best >= 0 ? text[..best] : null;
        }

        return Enumerable.Range(0, b).Select(r => new GenerationResult(
            prompts[r], generated[r].ToArray(), texts[r] ?? tokenizer.Decode(generated[r]), finish[r] ?? "length")).ToArray();
    }
}
