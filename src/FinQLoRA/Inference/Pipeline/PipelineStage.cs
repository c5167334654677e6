using FinQLoRA.Models;
using FinQLoRA.Loading;

namespace FinQLoRA.Inference.Pipeline;

/// <summary>One pipeline stage: decoder layers [FirstLayer, FirstLayer + LayerCount), plus the embeddings, the final
/// norm and the lm_head on the first stage (rank 0 embeds and samples). <see cref="ParameterCount"/> is what the stage
/// holds (a tied head counts once: it is the embedding matrix).</summary>
public sealed record PipelineStage(int Index, int FirstLayer, int LayerCount, long ParameterCount, bool HoldsEmbeddings, bool HoldsHead)
{
    public int EndLayer => FirstLayer + LayerCount;

    /// <summary>Load options that materialise only this stage's weights.</summary>
    public ModelLoadOptions Restrict(ModelLoadOptions options) => options with
    {
        LayerRange = (FirstLayer, LayerCount),
        LoadEmbeddings = HoldsEmbeddings,
        LoadHead = HoldsHead,
    };
}
