using FinQLoRA.Data.Tasks;
using FinQLoRA.Evaluation;
using FinQLoRA.IO;
using FinQLoRA.Inference;
using FinQLoRA.Serving;
using FinQLoRA.Training;

namespace FinQLoRA.Recipes;

/// <summary>
/// <c>finqlora eval</c> end to end: checks the request and the output folder before loading, loads the model in one
/// process or as pipeline stages (<see cref="GenerationSession"/>), applies the adapter, scores every task and writes
/// predictions, per-task results and <c>results.json</c> (<see cref="RunResultFile"/>) under <c>Out</c>.
/// </summary>
public static class EvaluationRecipe
{
    /// <param name="onResult">called on the main rank after each task (the CLI renders a table row)</param>
    /// <returns>the results on the main rank; empty on other pipeline ranks</returns>
    public static IReadOnlyList<RunResult> Run(EvaluationRequest request, Action<RunResult>? onResult = null)
    {
        request.Validate();
        if (request.Out != null) OutputPlacement.CheckFolder(request.Out, [request.ModelPath, request.Adapter, request.DataDir, request.Data], request.Overwrite);
        var setup = new GenerationSetup(request.ModelPath, request.Load)
        {
            Adapters = request.Adapter != null ? [(Adapters.LoraLinear.DefaultAdapter, request.Adapter)] : [],
            PipelineStages = request.PipelineStages, MicroBatches = request.MicroBatches, Command = "eval",
        };
        setup.Validate();
        if (request.Out != null)
        {
            Directory.CreateDirectory(request.Out);
            if (!OutputMarker.IsMarked(request.Out)) OutputMarker.Write(request.Out, "evaluation");
        }

        using var session = GenerationSession.Open(setup);
        var lora = session.Adapters.FirstOrDefault();
        var cost = request.Adapter != null ? AdapterCost.Of(request.Adapter) : AdapterCost.None;
        var evaluator = new TaskEvaluator(session.Generator, session.SingleProcess?.Model);
        var options = new TaskEvaluator.Options(request.ModelName, request.Bits == 16 ? null : request.Bits, lora?.Rank, lora != null,
            request.BatchSize, request.Limit, cost.Bytes, cost.DeviceHours, request.Choice);
        var results = new List<RunResult>();
        foreach (string task in request.Tasks)
        {
            var (result, _) = evaluator.Evaluate(task, ExampleJsonl.Read(request.TestFile(task)), options, session.IsMain ? request.Out : null);
            if (result == null) continue;
            results.Add(result);
            onResult?.Invoke(result);
        }
        if (session.IsMain && request.Out != null) RunResultFile.Write(Path.Combine(request.Out, RunResultFile.FileName), results);
        return results;
    }
}
