using FinQLoRA.Models;
using FinQLoRA.Loading;

namespace FinQLoRA.Inference.Pipeline;

/// <summary>One pipeline stage: decoder layers [FirstLayer, FirstLayer + LayerCount), plus the embeddings on the
/// first stage and the final norm and lm_head where the plan puts them (<see cref="HoldsHead"/>: the last stage, or
/// the first). <see cref="ParameterCount"/> is what the stage holds (a tied head on another stage than the embeddings
/// counts there too, because that stage keeps its own copy of the embedding matrix).</summary>
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
