using FinQLoRA.Data.Tokenization;

namespace FinQLoRA.Inference;

/// <summary>Batched generation as evaluation needs it, single-process or pipeline-parallel. In a pipeline only rank 0
/// receives results (other ranks get an empty list and must still call, since every stage takes part).</summary>
public interface IBatchGenerator
{
    ITextTokenizer Tokenizer { get; }
    IReadOnlyList<GenerationResult> Generate(IReadOnlyList<string> prompts, GenerationOptions options, int batchSize);

    /// <summary>The same from token ids (a pipeline's later ranks pass an empty list).</summary>
    IReadOnlyList<GenerationResult> GenerateIds(IReadOnlyList<int[]> prompts, GenerationOptions options, int batchSize);
}
