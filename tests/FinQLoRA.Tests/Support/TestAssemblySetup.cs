using System.Runtime.CompilerServices;

namespace FinQLoRA.Tests.Support;

internal static class TestAssemblySetup
{
    /// <summary>The libstdc++ fix must run before any test touches TorchSharp.</summary>
    [ModuleInitializer]
    internal static void Init() => FinQLoRA.Runtime.TorchNativeLoader.EnsureLoaded();
}
