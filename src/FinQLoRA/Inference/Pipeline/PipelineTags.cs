using FinQLoRA.Distributed;

namespace FinQLoRA.Inference.Pipeline;

/// <summary>
/// MPI tags of the pipeline's messages. Headers use one fixed tag because a stage cannot know which micro-batch comes
/// next (finished ones drop out); payloads are tagged by (micro-batch, step) so that a mix-up fails loudly instead
/// of feeding one micro-batch's states to another. Tags wrap around below <see cref="MpiCommunicator.MaxTag"/>; that is
/// safe because messages between two ranks arrive in order and only a few are in flight at once.
/// </summary>
internal static class PipelineTags
{
    public const int Header = 1;
    private const int Span = 32000; // even, so the hidden/ids parity survives the wrap-around

    public static int Hidden(int microBatch, int step, int microBatches) => 2 + (int)(Item(microBatch, step, microBatches) * 2 % Span);

    public static int Ids(int microBatch, int step, int microBatches) => 2 + (int)((Item(microBatch, step, microBatches) * 2 + 1) % Span);

    private static long Item(int microBatch, int step, int microBatches) => (long)step * microBatches + microBatch;
}
