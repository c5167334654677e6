namespace FinQLoRA.Tests.Serving.ConsolePage;

/// <summary>The browser tests run one after the other: each starts a Chromium and a server, and two of each at once
/// would only make both slow on a small machine.</summary>
[CollectionDefinition(Name)]
public sealed class ChromiumCollection
{
    public const string Name = "chromium";
}
