namespace FinQLoRA.Serving;

/// <summary>The order waiting requests are admitted in (vLLM's <c>--scheduling-policy</c>).</summary>
public enum SchedulingPolicy
{
    /// <summary>First come, first served; a request's priority must be 0.</summary>
    Fcfs,
    /// <summary>Lowest <see cref="EngineRequest.Priority"/> first, ties by arrival. Only admission is ordered: a running
    /// request is never preempted for a more urgent one (vLLM's priority scheduler would preempt).</summary>
    Priority,
}
