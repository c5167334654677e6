using System.Text.Json;
using System.Text.Json.Nodes;
using FinQLoRA.Formats.Checkpoints;
using FinQLoRA.IO;
using FinQLoRA.Runtime;
using static TorchSharp.torch;

namespace FinQLoRA.Debugging;

/// <summary>
/// What every <c>finqlora debug dump-*</c> shares: the output checks made before any model loads (the model exists, the
/// file is no input and is replaced only with --overwrite), and the writing of the tensors (one safetensors file,
/// atomically) with a record beside it (<c>OUT.json</c>: the command, the model's files with their sha256, the device,
/// every tensor's shape), so that a dump compared on another machine says what produced it.
/// </summary>
public static class DebugDump
{
    /// <summary>The record's file: the dump's path plus this suffix.</summary>
    public const string RecordSuffix = ".json";

    /// <summary>Refuses a missing model or other input (each named by its field) and an output that is an input or
    /// exists without <paramref name="overwrite"/>.</summary>
    public static void Check(string model, string output, bool overwrite, params (string Field, string? Path)[] otherInputs)
    {
        if (string.IsNullOrWhiteSpace(model)) throw UserInputException.About($"{new ConfigField("model")} is required");
        if (!File.Exists(model) && !Directory.Exists(model))
            throw UserInputException.About($"{new ConfigField("model")} {model}: not found; pass a Hugging Face model folder or a .gguf file");
        foreach (var (field, path) in otherInputs)
            if (path != null && !File.Exists(path) && !Directory.Exists(path))
                throw UserInputException.About($"{new ConfigField(field)} {path}: not found");
        string?[] inputs = [model, .. otherInputs.Select(i => i.Path)];
        OutputPlacement.CheckFile(output, inputs, overwrite);
        OutputPlacement.CheckFile(output + RecordSuffix, inputs, overwrite);
    }

    /// <summary>Writes <paramref name="tensors"/> (moved to the CPU as they are written) to <paramref name="output"/> and
    /// the record beside it; <paramref name="details"/> adds the command's own fields to the record.</summary>
    public static DebugDumpResult Write(string output, string command, string model, ComputeDevice device,
        IReadOnlyList<KeyValuePair<string, Tensor>> tensors, JsonObject details)
    {
        SafetensorsFile.Write(output, tensors, new Dictionary<string, string> { ["format"] = "pt", ["finqlora_command"] = command });
        var shapes = tensors.OrderBy(t => t.Key, StringComparer.Ordinal).Select(t => (t.Key, t.Value.shape)).ToList();
        var record = new JsonObject
        {
            ["command"] = command,
            ["finqlora_version"] = BuildInfo.Version,
            ["device"] = device.ToString(),
            ["model"] = Path.GetFullPath(model),
            ["model_files"] = FileHashes.Describe(model),
            ["file"] = Path.GetFullPath(output),
            ["file_sha256"] = FileHashes.Sha256(output),
        };
        foreach (var (key, value) in details) record[key] = value?.DeepClone();
        var shapeNode = new JsonObject();
        foreach (var (name, shape) in shapes)
            shapeNode[name] = new JsonArray(shape.Select(s => (JsonNode)s).ToArray());
        record["tensors"] = shapeNode;
        string recordPath = output + RecordSuffix;
        AtomicFile.WriteAllText(recordPath, record.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        return new DebugDumpResult(Path.GetFullPath(output), Path.GetFullPath(recordPath), shapes);
    }
}
