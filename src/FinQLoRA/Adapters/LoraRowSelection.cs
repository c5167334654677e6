using static TorchSharp.torch;

namespace FinQLoRA.Adapters;

/// <summary>
/// Which adapter each row of the next forward uses, as indices into every projection's <see cref="StackedLora"/>
/// (0 = the zero adapter, i.e. the base). One instance is shared by all projections of a model, so a server sets it
/// once per forward instead of walking the modules.
/// </summary>
public sealed class LoraRowSelection
{
    /// <summary>[B] int64 on the model's device; null makes stacked projections fall back to their active adapter.</summary>
    public Tensor? Rows { get; set; }

    /// <summary>Every row is a base row: the projections skip the (all-zero) delta.</summary>
    public bool BaseOnly { get; set; }
}
