using System.Text.Json;
using FinQLoRA.Training;

namespace FinQLoRA.Server.Models;

/// <summary>
/// What an adapter folder's <c>lineage.json</c> records (<see cref="RunLineage"/>: the FinQLoRA version and commit,
/// the command line, the sha256 of every input and of every adapter file), read once when the adapter is loaded so
/// that <c>/v1/models</c> shows the lineage of the adapter as it was loaded, not of whatever the folder holds later.
/// An adapter trained elsewhere has no such file: its lineage is null.
/// </summary>
internal static class AdapterLineage
{
    /// <summary>The recorded lineage, or null when the folder has none. A file that is not a JSON object is refused
    /// (naming it): an adapter whose record of origin is damaged should not be served as if it had none.</summary>
    public static JsonElement? Read(string adapterDir)
    {
        string path = Path.Combine(adapterDir, RunLineage.FileName);
        if (!File.Exists(path)) return null;
        try
        {
            using var document = JsonDocument.Parse(File.ReadAllBytes(path));
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                throw new UserInputException($"{path}: the lineage must be a JSON object (found {document.RootElement.ValueKind}); restore it from the run folder's run.json or remove the file");
            return document.RootElement.Clone();
        }
        catch (JsonException e)
        {
            throw new UserInputException($"{path}: the lineage is not valid JSON ({e.Message}); restore it from the run folder's run.json or remove the file");
        }
    }
}
