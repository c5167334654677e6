using static TorchSharp.torch;

namespace FinQLoRA.Serving;

/// <summary>
/// The decoder layers of a serving step, as the <see cref="ModelRunner"/> calls them: in one process the model's own
/// (<see cref="LocalStepForward"/>); across MPI ranks the pipeline driver, which runs the first stage here and the
/// others on their ranks (<see cref="Pipeline.PipelineStepForward"/>). Everything that changes a stage's state (its
/// KV slots, its adapters) goes through here, so that a pipeline can mirror it on every rank. Scheduler thread only;
/// each row's adapter is selected by the caller for the whole step.
/// </summary>
internal interface IStepForward : IDisposable
{
    /// <summary>Hidden states after the last decoder layer, [k, t, hidden], for a prefill of ids [k, t] at RoPE
    /// positions [k, t] under the additive mask [k, 1, t, span]; keys and values go where <paramref name="write"/> says.</summary>
    Tensor Prefill(IReadOnlyList<string?> adapters, Tensor ids, Tensor positions, Tensor mask, CacheWrite write);

    /// <summary>Logits [n, 1, vocab] of one decode step: ids [n, 1] at positions lengths [n, 1] under mask [n, 1, 1, span].</summary>
    Tensor Decode(IReadOnlyList<string?> adapters, Tensor feed, Tensor lengths, Tensor mask, CacheWrite.Decode write);

    /// <summary>Copies the first <paramref name="length"/> positions of slot <paramref name="from"/> into slot <paramref name="to"/>.</summary>
    void Move(int from, int to, int length);

    /// <summary>Residency put adapter <paramref name="name"/> at stack index <paramref name="index"/> of this rank's
    /// model, read from <paramref name="dir"/> (null: it came with the model); a pipeline's stages do the same on theirs.</summary>
    void AdapterPlaced(string name, string? dir, int index);

    /// <summary>Residency took adapter <paramref name="name"/> off the device (its index is free).</summary>
    void AdapterVacated(string name);

    /// <summary>Adapter <paramref name="name"/> was unregistered, after leaving the device.</summary>
    void AdapterRemoved(string name);

    /// <summary>How long the scheduler may sleep with nothing to do before <see cref="Idle"/> (null: for ever).</summary>
    TimeSpan? IdleTick { get; }

    /// <summary>Called after <see cref="IdleTick"/> without work (a pipeline tells the other ranks it is alive).</summary>
    void Idle();
}
