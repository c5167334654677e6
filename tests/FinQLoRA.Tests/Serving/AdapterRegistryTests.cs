using FinQLoRA.Adapters;
using FinQLoRA.Serving;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Serving;

/// <summary>The serving adapter registry on its own: names, in-flight counting and drain, registering and removing,
/// and the one "does not exist" error. Where the weights are is the residency's (Residency/ tests).</summary>
public sealed class AdapterRegistryTests
{
    [Fact]
    public void ServesTheModelsAdaptersAndRefusesUnknownNamesWithOpenAisError()
    {
        using var model = ServingEngineTests.ModelWithAdapters();
        var registry = new AdapterRegistry(LoraInjector.AdapterNames(model));
        Assert.Equal(LoraInjector.AdapterNames(model), registry.Names); // the model's order
        Assert.Equal(["a", "b", "d"], registry.Names.Order());
        Assert.True(registry.Has("b"));
        Assert.False(registry.Has("nope"));

        var e = Assert.Throws<ServingException>(() => registry.Acquire("nope"));
        Assert.Equal(ServingErrorKind.UnknownModel, e.Kind);
        Assert.Equal("The model `nope` does not exist.", e.Message);
        Assert.Equal("model", e.Param);
        var unload = Assert.Throws<ServingException>(() => { _ = registry.HideAndDrainAsync("nope"); });
        Assert.Equal(ServingErrorKind.UnknownModel, unload.Kind);
        Assert.Equal("lora_name", unload.Param);
        var taken = Assert.Throws<ServingException>(() => registry.EnsureFree("a"));
        Assert.Equal(ServingErrorKind.InvalidRequest, taken.Kind);
        Assert.Equal("lora_name", taken.Param);
        registry.Release(null); // a base request holds no adapter
    }

    [Fact]
    public void UnloadHidesTheNameAtOnceAndWaitsForItsRequests()
    {
        var registry = new AdapterRegistry(["a", "b", "d"]);
        registry.Acquire("a");
        registry.Acquire("a");
        var drained = registry.HideAndDrainAsync("a");
        Assert.False(registry.Has("a"));
        Assert.Equal(["b", "d"], registry.Names.Order());
        Assert.Equal(ServingErrorKind.UnknownModel, Assert.Throws<ServingException>(() => registry.Acquire("a")).Kind);
        Assert.Equal(ServingErrorKind.UnknownModel, Assert.Throws<ServingException>(() => { _ = registry.HideAndDrainAsync("a"); }).Kind);
        registry.Release("a");
        Assert.False(drained.IsCompleted);
        registry.Release("a");
        Assert.True(drained.IsCompletedSuccessfully);

        long serial = registry.SerialOf("a");
        registry.Remove("a");
        registry.EnsureFree("a"); // the name is free again
        registry.Register("a");
        Assert.NotEqual(serial, registry.SerialOf("a")); // another adapter under the same name: another prefix-cache root
        Assert.Equal(["b", "d", "a"], registry.Names); // a registered adapter comes last
        Assert.True(registry.HideAndDrainAsync("b").IsCompletedSuccessfully); // nothing in flight: drained at once
    }
}
