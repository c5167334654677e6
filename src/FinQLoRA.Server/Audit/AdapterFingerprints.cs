using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using FinQLoRA.Adapters;
using FinQLoRA.IO;
using FinQLoRA.Training;

namespace FinQLoRA.Server.Audit;

/// <summary>
/// The sha256 of each served adapter's weights (<c>adapter_model.safetensors</c>), hashed once when the adapter is
/// loaded, so that every audit line names the exact weights that answered. The hash is of the file the server read,
/// not copied from the adapter's <c>lineage.json</c>: where lineage records another hash for that file (it changed
/// after training), serve says so on stderr, and the line carries what was served. Hashing costs a read of the file,
/// so it happens only when the audit log is on.
/// </summary>
internal sealed class AdapterFingerprints(bool enabled)
{
    private readonly ConcurrentDictionary<string, string> _sha256 = new(StringComparer.Ordinal);

    /// <summary>The sha256 of a served adapter; null for the base, with the audit log off, or for a name not known here.</summary>
    public string? Of(string? adapter) => adapter is not null && _sha256.TryGetValue(adapter, out var h) ? h : null;

    /// <summary>Hashes an adapter folder's weights before it is loaded (null with the audit log off).</summary>
    public string? Hash(string dir)
    {
        if (!enabled) return null;
        string weights = Path.Combine(dir, PeftAdapterFiles.WeightsFileName);
        string sha256;
        try { sha256 = FileHashes.Sha256(weights); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null; // missing or unreadable: the loader refuses the folder with its own message
        }
        if (Recorded(dir) is { } recorded && recorded != sha256)
            Console.Error.WriteLine($"finqlora serve: {weights}: sha256 {sha256} differs from the {recorded} its {RunLineage.FileName} records (the file changed after training); audit lines name the served {sha256}");
        return sha256;
    }

    /// <summary>Records the hash of an adapter that now serves as <paramref name="name"/>.</summary>
    public void Loaded(string name, string? sha256)
    {
        if (sha256 is not null) _sha256[name] = sha256;
    }

    public void Unloaded(string name) => _sha256.TryRemove(name, out _);

    /// <summary>What the adapter's lineage.json records for its weights, when it has one that does.</summary>
    private static string? Recorded(string dir)
    {
        string lineage = Path.Combine(dir, RunLineage.FileName);
        if (!File.Exists(lineage)) return null;
        try { return JsonNode.Parse(File.ReadAllText(lineage))?["adapter_files"]?[PeftAdapterFiles.WeightsFileName]?.GetValue<string>(); }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException or FormatException)
        {
            return null; // not ours to judge here; `finqlora verify` reports a broken lineage
        }
    }
}
