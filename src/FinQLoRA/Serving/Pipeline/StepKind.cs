namespace FinQLoRA.Serving.Pipeline;

/// <summary>What a <see cref="StepDescriptor"/> tells the stages to do.</summary>
internal enum StepKind
{
    /// <summary>Allocate the KV slots of the stage's layers (the engine's sizes); the first descriptor.</summary>
    Start = 1,
    /// <summary>Run the stage's layers over the micro-batches of a prefill or decode step.</summary>
    Layers = 2,
    /// <summary>Copy a slot's positions into another slot (a row left, the last one moved into its place).</summary>
    Move = 3,
    /// <summary>Residency put an adapter at a stack index: the stage puts its layers of it at the same index.</summary>
    PlaceAdapter = 4,
    /// <summary>An adapter was unregistered (it left the device first): the stage forgets it.</summary>
    RemoveAdapter = 5,
    /// <summary>Nothing to do: rank 0 is alive (sent while idle, so that a waiting stage's watchdog does not fire).</summary>
    Heartbeat = 6,
    /// <summary>The server is stopping: leave the loop.</summary>
    Shutdown = 7,
    /// <summary>Residency took an adapter off the device: the stage frees its stack index.</summary>
    VacateAdapter = 8,
}
