using FinQLoRA.Data.Tokenization;
using FinQLoRA.Inference.Decoding;
using FinQLoRA.Models;
using static TorchSharp.torch;

namespace FinQLoRA.Inference;

/// <summary>
/// Batched generation with a KV cache. Prompts of different lengths are left-padded so that every sequence's
/// next token sits in the last column; padding is masked out of attention and does not shift positions.
/// The decode loop of generate and eval (also through <see cref="MultiAdapterGenerator"/>): prefill, then sample,
/// record (<see cref="GenerationProgress"/>: stop rules and text) and one decode step (<see cref="DecodeStep.Choose"/>)
/// per token.
/// </summary>
public sealed class TextGenerator(DecoderModel model, ITextTokenizer tokenizer) : IBatchGenerator
{
    public DecoderModel Model => model;
    public ITextTokenizer Tokenizer => tokenizer;

    /// <summary>Let <see cref="DecodeStep.Choose"/> pick the managed single-token step where it applies; false runs
    /// every step through libtorch (benchmarks and tests compare both).</summary>
    public bool ManagedDecodeStep { get; init; } = true;

    /// <summary>How many decode steps ran in managed code (tests check it ran).</summary>
    internal long ManagedSteps { get; private set; }

    public IReadOnlyList<GenerationResult> Generate(IReadOnlyList<string> prompts, GenerationOptions options, int batchSize = 8) =>
        GenerateIds(prompts.Select(p => tokenizer.Encode(p, options.AddBos)).ToList(), options, batchSize);

    public IReadOnlyList<GenerationResult> GenerateIds(IReadOnlyList<int[]> prompts, GenerationOptions options, int batchSize = 8)
    {
        options.Validate();
        if (batchSize < 1) throw UserInputException.About($"{new ConfigField("batch_size")} must be at least 1 (got {batchSize})");
        options.CheckPrompts(prompts, model.Config.MaxPositionEmbeddings);
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
        if (model.training) model.eval(); // generation never uses dropout
        var device = model.Device;
        int b = prompts.Length;
        var (ids, mask, longest) = LeftPadding.Build(prompts, tokenizer.PadId);
        var input = tensor(ids, [b, longest], device: device);
        // The mask of every position the batch can reach, made once (generated positions are real tokens); each step
        // takes a longer view of it instead of concatenating a new mask.
        int capacity = longest + options.MaxNewTokens;
        var fullMask = ones([b, capacity], ScalarType.Int64, device);
        fullMask.narrow(1, 0, longest).copy_(tensor(mask, [b, longest], device: device));
        var padMask = fullMask.narrow(1, 0, longest);
        using var cache = new KvCache(model.Config, b, capacity, model.ComputeDType, device);
        using var sampler = new TokenSampler(options, device);

        var progress = new GenerationProgress(prompts, options, tokenizer);
        var logits = model.Forward(input, padMask, cache, lastOnly: true);
        // A decode step's query sees every real key so far: its additive mask row is one view of this, as
        // AttentionMask.Build would make it (0 on real tokens, the most negative value on padding), in the compute
        // dtype; its position is the count of real tokens before it, one more each step.
        var fullAdditive = zeros([b, 1, 1, capacity], ScalarType.Float32, device)
            .masked_fill(fullMask.eq(0).view(b, 1, 1, capacity), float.MinValue).to(model.ComputeDType);
        var position = padMask.sum([1L], keepdim: true);                                            // [B, 1] int64
        int seen = longest;
        var step = DecodeStep.Choose(model, cache, ManagedDecodeStep);
        try
        {
            while (true)
            {
                using var stepScope = NewDisposeScope();
                var next = sampler.Next(logits.select(1, 0));
                long[] chosen = next.cpu().data<long>().ToArray();
                progress.Record(chosen);
                if (progress.Done) break;
                var feed = tensor(progress.NextFeed(chosen), [b, 1], device: device);
                seen++;
                logits.Dispose();
                // One sequence has no padding: its step needs no mask or positions beyond the cache's (and can be the
                // managed single-token step).
                logits = (b == 1
                    ? step.Forward(feed)
                    : step.Forward(feed, position, fullAdditive.narrow(3, 0, seen))).MoveToOuterDisposeScope();
                position.add_(1);
            }
        }
        finally
        {
            if (step is Decoding.ManagedDecodeStep managed) ManagedSteps += managed.Steps;
        }
        return progress.Results();
    }
}
