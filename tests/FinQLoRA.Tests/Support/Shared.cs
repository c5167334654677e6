using Xunit;

namespace FinQLoRA.Tests.Support;

/// <summary>
/// Locates the read-only <c>../shared</c> folder beside the repository (data sets, tiny models, docs).
/// A fresh clone has no such folder: tests that need it are skipped there (see
/// <see cref="SharedFactAttribute"/>), but under <c>CI=true</c> they run and fail with a message naming the path.
/// </summary>
public static class Shared
{
    public static string RepoRoot { get; } = FindRepoRoot();

    /// <summary>The shared folder: <c>$FINQLORA_SHARED</c> if set, else <c>&lt;repo&gt;/../shared</c>.</summary>
    public static string Root { get; } = Environment.GetEnvironmentVariable("FINQLORA_SHARED") is { Length: > 0 } env
        ? Path.GetFullPath(env)
        : Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared"));

    public static bool Available => Directory.Exists(Root);

    public static bool IsCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    /// <summary>Full path of a file under the shared folder; throws with the path named when it is missing.</summary>
    public static string File(string relative)
    {
        string path = Path.Combine(Root, relative);
        if (!System.IO.File.Exists(path) && !Directory.Exists(path))
            throw new FileNotFoundException($"test input missing: {path} (the tests expect the project's shared folder beside the repository, or FINQLORA_SHARED pointing at it)", path);
        return path;
    }

    public static string SkipReason => $"needs the shared test data folder at {Root} (absent in a fresh clone; set FINQLORA_SHARED to use another place)";

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (System.IO.File.Exists(Path.Combine(dir.FullName, "FinQLoRA.slnx")))
                return dir.FullName;
        throw new InvalidOperationException($"cannot find FinQLoRA.slnx above {AppContext.BaseDirectory}");
    }
}

/// <summary>A fact that needs <c>../shared</c>: skipped when it is absent, except under CI=true where it runs (and fails).</summary>
public sealed class SharedFactAttribute : FactAttribute
{
    public SharedFactAttribute()
    {
        if (!Shared.Available && !Shared.IsCi) Skip = Shared.SkipReason;
    }
}

/// <summary>A theory that needs <c>../shared</c>; see <see cref="SharedFactAttribute"/>.</summary>
public sealed class SharedTheoryAttribute : TheoryAttribute
{
    public SharedTheoryAttribute()
    {
        if (!Shared.Available && !Shared.IsCi) Skip = Shared.SkipReason;
    }
}
