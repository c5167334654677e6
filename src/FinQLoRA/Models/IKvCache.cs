using static TorchSharp.torch;

namespace FinQLoRA.Models;

/// <summary>Where attention stores this forward's keys and values and reads back all it may attend to. The batch
/// generator's <see cref="KvCache"/> keeps one length for all rows; the server's slot pool keeps one per row.</summary>
public interface IKvCache
{
    /// <summary>Stores k, v ([B, kvHeads, T, d]) of <paramref name="layer"/> and returns the keys and values the
    /// queries attend to ([B, kvHeads, S, d]; positions hidden by the mask may hold anything finite).</summary>
    (Tensor Keys, Tensor Values) Append(int layer, Tensor k, Tensor v);
}
