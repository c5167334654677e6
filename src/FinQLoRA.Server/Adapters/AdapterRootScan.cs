using System.Text.RegularExpressions;
using FinQLoRA.Adapters;
using FinQLoRA.Server.Common;

namespace FinQLoRA.Server.Adapters;

/// <summary>The adapters <c>--adapter-root DIR</c> serves from the start: every folder directly under DIR that holds a
/// PEFT <c>adapter_config.json</c>, under the folder's name (other folders are not adapters and are passed over).</summary>
internal static partial class AdapterRootScan
{
    /// <summary>(name, folder with links resolved), by name; a folder whose name cannot be a model id, or that a link
    /// takes outside the root, is refused naming it.</summary>
    public static IReadOnlyList<(string Name, string Dir)> Find(string root)
    {
        var policy = new AdapterRootPolicy(root);
        var found = new List<(string, string)>();
        foreach (string dir in Directory.EnumerateDirectories(root).Order(StringComparer.Ordinal))
        {
            if (!File.Exists(Path.Combine(dir, PeftAdapterConfig.FileName))) continue;
            string name = Path.GetFileName(dir);
            if (!NamePattern().IsMatch(name))
                throw new UserInputException($"--adapter-root {root}: the adapter folder '{name}' would be served under its name, which must be 1-64 letters, digits, '_' or '-'; rename the folder");
            try { found.Add((name, policy.Resolve(name))); }
            catch (ApiException e) { throw new UserInputException($"--adapter-root {root}: {e.Message}"); }
        }
        return found;
    }

    [GeneratedRegex("^[A-Za-z0-9_-]{1,64}$")]
    private static partial Regex NamePattern();
}
