namespace FinQLoRA.Adapters;

/// <summary>What <see cref="LoraInjector.Apply(Models.DecoderModel, LoraConfig, long, string)"/> did: how many projections
/// got the adapter, and the model's trainable / total parameter counts afterwards (total includes the adapters).</summary>
public sealed record LoraInjectionSummary(string AdapterName, int WrappedModules, long TrainableParameters, long AllParameters)
{
    public double TrainablePercent => AllParameters == 0 ? 0 : 100.0 * TrainableParameters / AllParameters;

    /// <summary>PEFT's <c>print_trainable_parameters()</c> line.</summary>
    public override string ToString() => LoraInjector.FormatTrainable(TrainableParameters, AllParameters);
}
