using FinQLoRA.Adapters;
using FinQLoRA.Inference.Pipeline;
using FinQLoRA.Loading;
using FinQLoRA.Models;

namespace FinQLoRA.Serving.Pipeline;

/// <summary>
/// Loads this rank's part of a model that the engine runs over a pipeline (<c>serve</c>, <c>generate</c> and <c>eval</c>
/// with <c>pipeline_stages</c>): the layers of its stage in <see cref="PipelinePlanner"/>'s plan, the embeddings on
/// rank 0, and the final norm and head on rank 0 too (it samples; see <see cref="PipelineStepForward"/>), weighed there
/// by the plan so that the stages stay balanced; then the adapters served from the start, each holding the LoRA weights
/// of this stage's layers only.
/// </summary>
public static class PipelineServingStage
{
    /// <summary>The caller disposes the model.</summary>
    public static (DecoderModel Model, PipelinePlan Plan) Load(string path, ModelLoadOptions options, int stages, int rank,
        IReadOnlyList<(string Name, string Dir)> adapters)
    {
        var (config, reader) = ModelLoading.Open(path);
        PipelinePlan plan;
        DecoderModel model;
        using (reader)
        {
            plan = PipelinePlanner.Plan(config, stages);
            if (rank < 0 || rank >= stages) throw new ArgumentOutOfRangeException(nameof(rank), rank, $"rank must be in [0, {stages})");
            model = ModelLoading.LoadModel(config, reader, plan.Stages[rank].Restrict(options));
        }
        try
        {
            foreach (var (name, dir) in adapters) PeftAdapterFiles.Load(dir, model, name);
        }
        catch
        {
            model.Dispose();
            throw;
        }
        return (model, plan);
    }
}
