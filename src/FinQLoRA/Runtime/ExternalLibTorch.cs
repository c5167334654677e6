namespace FinQLoRA.Runtime;

/// <summary>
/// libtorch and the LibTorchSharp shim taken from folders the user names in <c>FINQLORA_LIBTORCH_DIR</c> instead of
/// the NuGet runtime package: typically a PyTorch install's <c>torch/lib</c> (with CUDA) plus a shim built against
/// it. The value is one folder or several separated by ':'; each library is taken from the first folder that has
/// it, so the shim may live in its own folder after torch/lib. The libraries are loaded by full path from where
/// they are, never copied or linked elsewhere: PyTorch's libtorch_cuda.so finds cuBLAS, cuDNN and NCCL through
/// $ORIGIN-relative RUNPATHs that only hold in its own folder.
/// </summary>
internal sealed class ExternalLibTorch
{
    public const string Variable = "FINQLORA_LIBTORCH_DIR";
    public const string ShimFileName = "libLibTorchSharp.so";

    /// <summary>Load order: each library after the ones it needs, the shim last. The CUDA pair is present only in a
    /// CUDA build of libtorch.</summary>
    internal static readonly IReadOnlyList<(string File, bool Required)> LoadOrder =
    [
        ("libc10.so", true), ("libc10_cuda.so", false), ("libtorch_cpu.so", true), ("libtorch_cuda.so", false),
        ("libtorch.so", true), (ShimFileName, true),
    ];

    private const string Fix = "point it at libtorch's lib folder (a PyTorch install's torch/lib) holding a " + ShimFileName +
                               " built against that libtorch, or add the shim's folder after it separated by ':' (see docs/gpu.md)";

    private ExternalLibTorch(string value, IReadOnlyList<string> libraries)
    {
        Value = value;
        Libraries = libraries;
    }

    /// <summary>The variable's value as given, for messages.</summary>
    public string Value { get; }

    /// <summary>Full paths in load order; the shim is last.</summary>
    public IReadOnlyList<string> Libraries { get; }

    public string Shim => Libraries[^1];

    public bool HasCuda => Libraries.Any(l => Path.GetFileName(l) == "libtorch_cuda.so");

    /// <summary>The version of the libtorch in use, read beside its lib folder: a PyTorch install's
    /// <c>torch/version.py</c> or a libtorch distribution's <c>build-version</c>; null when neither is there.
    /// Needed because TorchSharp's <c>torch.__version__</c> is the version it was built for, a constant.</summary>
    public string? Version
    {
        get
        {
            string lib = Path.GetDirectoryName(Libraries.First(l => Path.GetFileName(l) == "libtorch.so"))!;
            string parent = Path.GetDirectoryName(lib) ?? lib;
            string versionPy = Path.Combine(parent, "version.py");
            if (File.Exists(versionPy))
            {
                foreach (string line in File.ReadLines(versionPy))
                {
                    var m = System.Text.RegularExpressions.Regex.Match(line, @"^__version__\s*=\s*['""]([^'""]+)['""]");
                    if (m.Success) return m.Groups[1].Value;
                }
            }
            string buildVersion = Path.Combine(parent, "build-version");
            return File.Exists(buildVersion) && File.ReadAllText(buildVersion).Trim() is { Length: > 0 } v ? v : null;
        }
    }

    public static ExternalLibTorch? FromEnvironment() => Resolve(Environment.GetEnvironmentVariable(Variable));

    /// <summary>Null when the value is unset or blank (use the NuGet runtime); otherwise every required library has
    /// been found, or one <see cref="UserInputException"/> names the variable and every missing file.</summary>
    internal static ExternalLibTorch? Resolve(string? value)
    {
        if (string.IsNullOrWhiteSpace(value)) return null;
        string[] folders = value.Split(':', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        foreach (string folder in folders)
            if (!Directory.Exists(folder))
                throw new UserInputException($"{Variable}={value}: folder '{folder}' does not exist; {Fix}");

        var found = new List<string>();
        var missing = new List<string>();
        foreach (var (file, required) in LoadOrder)
        {
            string? path = folders.Select(f => Path.GetFullPath(Path.Combine(f, file))).FirstOrDefault(File.Exists);
            if (path != null) found.Add(path);
            else if (required) missing.Add(file);
        }
        if (missing.Count > 0)
            throw new UserInputException($"{Variable}={value}: {string.Join(", ", missing)} not found in {(folders.Length == 1 ? "that folder" : "any of its folders")}; {Fix}");
        return new ExternalLibTorch(value, found);
    }

    /// <summary>The error for a library that is there but does not load (wrong architecture, a shim built for
    /// another libtorch: "undefined symbol"); <paramref name="reason"/> is the dynamic linker's message.</summary>
    public UserInputException LoadError(string library, string reason) =>
        new($"{Variable}={Value}: {library} does not load ({reason}); " +
            (Path.GetFileName(library) == ShimFileName
                ? "the shim must be built against this very libtorch version (see docs/gpu.md)"
                : "point it at a libtorch for linux-x64 whose dependencies are installed (see docs/gpu.md)"));
}
