namespace FinQLoRA.Data.Tasks;

/// <summary>Which side of a task's data to build. What it changes is task-specific and documented on
/// <see cref="TaskDefinition.HeldOutFraction"/> (a seeded partition) and on the NER source (prompt construction).</summary>
public enum DataSplit
{
    Train,
    Test,
}
