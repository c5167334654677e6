using FinQLoRA.Loading;
using FinQLoRA.Models;

namespace FinQLoRA.Inference.Pipeline;

/// <summary>Plans a pipeline for a checkpoint and loads one stage of it: only that stage's layers are read and
/// materialised, the embeddings only on the first stage, the final norm and lm_head only on the last.</summary>
public static class PipelineStageLoader
{
    /// <summary>Loads stage <paramref name="rank"/> of a <paramref name="stages"/>-stage plan from an HF folder or
    /// .gguf file. The caller disposes the model.</summary>
    public static (DecoderModel Model, PipelinePlan Plan) Load(string path, ModelLoadOptions options, int stages, int rank)
    {
        var (config, reader) = ModelLoading.Open(path);
        using (reader)
        {
            var plan = PipelinePlanner.Plan(config, stages);
            if (rank < 0 || rank >= stages) throw new ArgumentOutOfRangeException(nameof(rank), rank, $"rank must be in [0, {stages})");
            return (ModelLoading.LoadModel(config, reader, plan.Stages[rank].Restrict(options)), plan);
        }
    }
}
