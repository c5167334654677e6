namespace FinQLoRA.Tests.Serving.Operations;

/// <summary>The operations tests share one <see cref="OperationsFixture"/> and run one at a time, so that the metrics
/// one test reads are moved by its own requests only.</summary>
[CollectionDefinition(Name)]
public sealed class OperationsCollection : ICollectionFixture<OperationsFixture>
{
    public const string Name = "operations";
}
