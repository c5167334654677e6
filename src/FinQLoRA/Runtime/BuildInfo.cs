using System.Reflection;

namespace FinQLoRA.Runtime;

/// <summary>The FinQLoRA version and the git commit it was built from (the SDK puts "+commit" in the informational version).</summary>
public static class BuildInfo
{
    private static readonly string Informational =
        typeof(BuildInfo).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0.0.0";

    public static string Version => Informational.Split('+')[0];

    /// <summary>The commit, or null for a build outside a git checkout.</summary>
    public static string? Commit => Informational.Contains('+') ? Informational[(Informational.IndexOf('+') + 1)..] : null;
}
