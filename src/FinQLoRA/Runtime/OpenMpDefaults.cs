using System.Runtime.InteropServices;

namespace FinQLoRA.Runtime;

/// <summary>
/// libtorch's OpenMP threads spin while they wait for work (libgomp's default active wait policy). When anything else
/// wants the cores — another rank, a parallel test, a second job — spinning threads starve the thread they wait
/// for, and a training step on a 2-core machine was measured 10–30× slower (a 260K-parameter model: 3–9 s per step
/// instead of 0.2–0.4 s). A passive policy sleeps instead. libgomp reads the variable once, when libtorch is loaded,
/// so it must be in the native environment before that; a value the user set is left alone.
/// </summary>
internal static class OpenMpDefaults
{
    [DllImport("libc", SetLastError = true)]
    private static extern int setenv(string name, string value, int overwrite);

    public static void Apply()
    {
        if (!OperatingSystem.IsLinux()) return;
        if (Environment.GetEnvironmentVariable("OMP_WAIT_POLICY") is { Length: > 0 }) return;
        setenv("OMP_WAIT_POLICY", "PASSIVE", 0);
    }
}
