using System.Security.Cryptography;

// The folder is Console/, but the namespace cannot be FinQLoRA.Server.Console: inside FinQLoRA.Server that name would
// hide System.Console from every file of the server.
namespace FinQLoRA.Server.ConsolePage;

/// <summary>
/// The console page's files (plain HTML, CSS and JavaScript: no framework, no build step, nothing fetched from elsewhere),
/// embedded in this assembly as resources (FinQLoRA.Server.csproj) and read into memory once, so that a server needs
/// no files beside its binary and serves exactly the page it was built with.
/// </summary>
internal static class ConsoleAssets
{
    /// <summary>Each file and its content type; UTF-8 is named so that a browser never guesses the encoding.</summary>
    internal static readonly (string Name, string ContentType)[] Files =
    [
        ("index.html", "text/html; charset=utf-8"),
        ("app.js", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
    ];

    /// <summary>The files by the name they are served under (<c>/console/{name}</c>; index.html also at <c>/</c>).</summary>
    public static IReadOnlyDictionary<string, ConsoleAsset> ByName { get; } = Load(); // after Files: static initializers run in order

    /// <summary>The resource name the csproj gives a file (its LogicalName).</summary>
    internal static string ResourceName(string file) => "FinQLoRA.Server.Console." + file;

    private static Dictionary<string, ConsoleAsset> Load()
    {
        var assembly = typeof(ConsoleAssets).Assembly;
        var assets = new Dictionary<string, ConsoleAsset>(StringComparer.Ordinal);
        foreach (var (name, contentType) in Files)
        {
            using var stream = assembly.GetManifestResourceStream(ResourceName(name))
                ?? throw new InvalidOperationException($"the console file {name} is not embedded in {assembly.GetName().Name} (FinQLoRA.Server.csproj lists the Console/ files as EmbeddedResource)");
            using var copy = new MemoryStream();
            stream.CopyTo(copy);
            byte[] content = copy.ToArray();
            string etag = "\"" + Convert.ToHexStringLower(SHA256.HashData(content))[..32] + "\"";
            assets[name] = new ConsoleAsset(name, content, contentType, etag);
        }
        return assets;
    }
}
