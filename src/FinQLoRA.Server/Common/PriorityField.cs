using FinQLoRA.Serving;

namespace FinQLoRA.Server.Common;

/// <summary>vLLM's per-request <c>priority</c> (completions, chat, decisions): an integer, lower admitted earlier under
/// <c>--scheduling-policy priority</c>; under first come, first served anything but 0 is a 400, as vLLM answers it.</summary>
internal static class PriorityField
{
    public static int Read(long? priority, ServerState state)
    {
        int p = RequestFields.InRange(priority, "priority", int.MinValue, int.MaxValue) ?? 0;
        if (p != 0 && state.Engine.Options.SchedulingPolicy == SchedulingPolicy.Fcfs)
            throw new ApiException(400, EngineRequest.PriorityNeedsPolicy(p), "priority");
        return p;
    }
}
