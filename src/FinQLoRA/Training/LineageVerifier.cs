using System.Text.Json;
using System.Text.Json.Nodes;
using FinQLoRA.IO;

namespace FinQLoRA.Training;

/// <summary>
/// <c>finqlora verify DIR</c>: recomputes every hash a run folder (run.json) or an adapter folder (lineage.json)
/// recorded — the adapter's files, and the inputs that are still present — and reports the first mismatch; for a
/// differentially private run it also recomputes the ε the record claims.
/// </summary>
public static class LineageVerifier
{
    public enum Outcome { Match, Mismatch, Missing }

    public sealed record Check(string What, string Path, Outcome Outcome, string? Detail = null);

    /// <returns>every check in order; the folder verifies when none is a <see cref="Outcome.Mismatch"/></returns>
    public static IReadOnlyList<Check> Verify(string dir)
    {
        string runJson = Path.Combine(dir, RunRecord.FileName), lineageJson = Path.Combine(dir, RunLineage.FileName);
        JsonObject lineage;
        string adapterDir, record;
        if (File.Exists(runJson))
        {
            lineage = Read(runJson)["lineage"] as JsonObject
                ?? throw new UserInputException($"{runJson}: has no \"lineage\" record (written by a FinQLoRA before lineage was recorded); nothing to verify against");
            adapterDir = Path.Combine(dir, "adapter");
            record = runJson;
        }
        else if (File.Exists(lineageJson))
        {
            lineage = Read(lineageJson);
            adapterDir = dir;
            record = lineageJson;
        }
        else throw new UserInputException($"{dir}: neither run.json nor {RunLineage.FileName}; give a training run folder or an adapter folder FinQLoRA wrote");

        var checks = new List<Check>();
        if (lineage["adapter_files"] is JsonObject files)
            foreach (var (name, hash) in files)
                checks.Add(Compare("adapter file", Path.Combine(adapterDir, name), hash?.GetValue<string>()));
        if (lineage["inputs"] is JsonObject inputs)
            foreach (var (kind, list) in inputs)
                foreach (var entry in list?.AsArray() ?? [])
                    checks.Add(Compare($"input {kind}", entry!["path"]!.GetValue<string>(), entry["sha256"]?.GetValue<string>(), missingIsMismatch: false));
        if (lineage["privacy"] is JsonObject privacy) checks.Add(Privacy.PrivacyRecordCheck.Verify(privacy, record));
        return checks;
    }

    private static Check Compare(string what, string path, string? recorded, bool missingIsMismatch = true)
    {
        if (!File.Exists(path))
            return missingIsMismatch ? new Check(what, path, Outcome.Mismatch, "missing") : new Check(what, path, Outcome.Missing, "not present, skipped");
        string now = FileHashes.Sha256(path);
        return now == recorded ? new Check(what, path, Outcome.Match) : new Check(what, path, Outcome.Mismatch, $"sha256 {now} differs from the recorded {recorded}");
    }

    private static JsonObject Read(string file) => RunRecord.Read(file);
}
