using FinQLoRA.Adapters;
using FinQLoRA.Data.Tokenization;
using FinQLoRA.Distributed;
using FinQLoRA.Inference;
using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Serving.Pipeline;

namespace FinQLoRA.Serving;

/// <summary>
/// A loaded model ready to generate, in one process or as this rank's stage of a pipeline: the one place where
/// "single process or pipeline stages" is decided, for eval, generate and serve. Adapters are loaded in the order
/// given; in a pipeline only the main rank receives results, but every rank must call the generator (the engine over
/// the stages: <see cref="PipelineGenerator"/>).
/// </summary>
public sealed class GenerationSession : IDisposable
{
    private GenerationSession(DecoderModel model, ITextTokenizer tokenizer, IBatchGenerator generator, DistributedContext? distributed,
        IReadOnlyList<LoraConfig>? adapters = null)
    {
        Adapters = adapters ?? [];
        Model = model;
        Tokenizer = tokenizer;
        Generator = generator;
        Distributed = distributed;
    }

    /// <summary>The configs of the adapters loaded, in the setup's order.</summary>
    public IReadOnlyList<LoraConfig> Adapters { get; }

    /// <summary>The whole model, or this rank's stage.</summary>
    public DecoderModel Model { get; }
    public ITextTokenizer Tokenizer { get; }
    public IBatchGenerator Generator { get; }

    /// <summary>The MPI job of a pipeline; null in one process.</summary>
    public DistributedContext? Distributed { get; }

    /// <summary>True where results arrive and output is written (always, outside a pipeline).</summary>
    public bool IsMain => Distributed?.IsMain ?? true;

    /// <summary>The single-process generator (adapters per request); null in a pipeline.</summary>
    public TextGenerator? SingleProcess => Generator as TextGenerator;

    /// <summary>Validates the setup, joins the MPI job when it asks for stages, then loads (tokenizer first, so a bad
    /// one fails before the weights are read).</summary>
    public static GenerationSession Open(GenerationSetup setup)
    {
        setup.Validate();
        DistributedContext? dist = null;
        try
        {
            if (setup.PipelineStages > 1)
            {
                dist = DistributedContext.FromEnvironment();
                if (dist.Size != setup.PipelineStages)
                    throw UserInputException.About($"{new ConfigField("pipeline_stages")} {setup.PipelineStages} needs a job of {setup.PipelineStages} ranks but this one has {dist.Size}; run: mpirun -np {setup.PipelineStages} finqlora {setup.Command} {new ConfigField("pipeline_stages")} {setup.PipelineStages} ...");
            }
            var tokenizer = ModelLoading.LoadTokenizer(setup.ModelPath);
            if (dist != null)
            {
                var (stage, _) = PipelineServingStage.Load(setup.ModelPath, setup.Load with { Device = dist.Device }, setup.PipelineStages, dist.Rank, []);
                return new GenerationSession(stage, tokenizer, new PipelineGenerator(stage, dist.Communicator, tokenizer) { MicroBatches = setup.MicroBatches }, dist);
            }
            var model = ModelLoading.LoadModel(setup.ModelPath, setup.Load);
            var adapters = new List<LoraConfig>();
            try
            {
                foreach (var (name, dir) in setup.Adapters) adapters.Add(PeftAdapterFiles.Load(dir, model, name));
            }
            catch
            {
                model.Dispose();
                throw;
            }
            return new GenerationSession(model, tokenizer, new TextGenerator(model, tokenizer), null, adapters);
        }
        catch
        {
            dist?.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        Model.Dispose();
        Distributed?.Dispose();
    }
}
