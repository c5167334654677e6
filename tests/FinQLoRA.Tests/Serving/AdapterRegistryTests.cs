using FinQLoRA.Adapters;
using FinQLoRA.Serving;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Serving;

/// <summary>The serving adapter registry on its own (no scheduler: the test thread is the owner thread): names,
/// in-flight counting and drain, loading and unloading, and the one "does not exist" error.</summary>
public sealed class AdapterRegistryTests
{
    [Fact]
    public void ServesTheModelsAdaptersAndRefusesUnknownNamesWithOpenAisError()
    {
        using var model = ServingEngineTests.ModelWithAdapters();
        using var registry = new AdapterRegistry(model);
        Assert.Equal(["a", "b", "d"], registry.Names.Order());
        Assert.Equal(LoraInjector.AdapterNames(model), registry.Names); // the model's order, which is the stacks' order
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
        using var model = ServingEngineTests.ModelWithAdapters();
        using var registry = new AdapterRegistry(model);
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

        registry.Delete("a");
        Assert.Equal(["b", "d"], LoraInjector.AdapterNames(model).Order());
        registry.EnsureFree("a"); // the name is free again
        Assert.True(registry.HideAndDrainAsync("b").IsCompletedSuccessfully); // nothing in flight: drained at once
    }

    [Fact]
    public void LoadServesAFolderUnderANewNameAndABadFolderLeavesTheNameFree()
    {
        using var model = ServingEngineTests.ModelWithAdapters();
        using var registry = new AdapterRegistry(model);
        using var temp = new TempFolder();
        string dir = temp.Path;
        PeftAdapterFiles.Save(Path.Combine(dir, "a"), model, new LoraConfig { Rank = 4, Alpha = 16, TargetModules = ["q_proj", "v_proj"] }, "a");
        var before = registry.Names;
        registry.Load("a2", Path.Combine(dir, "a"));
        Assert.Equal([.. before, "a2"], registry.Names); // a loaded adapter comes last
        Assert.Equal(ServingErrorKind.InvalidRequest, Assert.Throws<ServingException>(() => registry.Load("a2", Path.Combine(dir, "a"))).Kind);

        Directory.CreateDirectory(Path.Combine(dir, "empty"));
        Assert.ThrowsAny<Exception>(() => registry.Load("bad", Path.Combine(dir, "empty")));
        Assert.False(registry.Has("bad"));
        Assert.DoesNotContain("bad", LoraInjector.AdapterNames(model));
        registry.EnsureFree("bad");
    }
}
