using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;

namespace FinQLoRA.Formats.Checkpoints;

/// <summary>
/// A Hugging Face model folder: <c>model.safetensors</c>, or shards listed in <c>model.safetensors.index.json</c>.
/// Shards are read tensor by tensor with positioned reads, so only the tensor being read is ever in memory.
/// </summary>
public sealed class HfCheckpointReader : ICheckpointReader
{
    private readonly List<SafetensorsFile> _files = new();
    private readonly Dictionary<string, SafetensorsFile> _owner = new();

    public string Source { get; }
    public IReadOnlyList<TensorEntry> Entries { get; }

    public HfCheckpointReader(string folder)
    {
        Source = folder;
        string single = Path.Combine(folder, "model.safetensors");
        string index = Path.Combine(folder, "model.safetensors.index.json");
        try
        {
            if (File.Exists(index)) OpenSharded(folder, index);
            else if (File.Exists(single)) Add(new SafetensorsFile(single));
            else
                throw UserInputException.About($"{folder}: no model.safetensors or model.safetensors.index.json; point {new ConfigField("model")} at a Hugging Face model folder or a .gguf file");
        }
        catch
        {
            Dispose();
            throw;
        }
        Entries = _files.SelectMany(f => f.Entries).OrderBy(e => e.Name, StringComparer.Ordinal).ToList();
    }

    private void OpenSharded(string folder, string index)
    {
        JsonObject map;
        try
        {
            map = JsonNode.Parse(File.ReadAllText(index))?["weight_map"] as JsonObject
                ?? throw new UserInputException($"{index}: missing 'weight_map'");
        }
        catch (JsonException e) { throw new UserInputException($"{index}: not valid JSON ({e.Message})"); }
        var shards = new Dictionary<string, SafetensorsFile>();
        foreach (var (tensor, shardNode) in map)
        {
            string shard = shardNode!.GetValue<string>();
            if (!shards.TryGetValue(shard, out var file))
            {
                string path = Path.Combine(folder, shard);
                if (!File.Exists(path))
                    throw new UserInputException($"{index}: shard '{shard}' (holding '{tensor}') is missing from {folder}; download the whole model again");
                file = new SafetensorsFile(path);
                shards[shard] = file;
                _files.Add(file);
            }
            if (!file.Contains(tensor))
                throw new UserInputException($"{file.Path}: tensor '{tensor}' listed in {Path.GetFileName(index)} is not in this shard");
            _owner[tensor] = file;
        }
    }

    private void Add(SafetensorsFile file)
    {
        _files.Add(file);
        foreach (var e in file.Entries) _owner[e.Name] = file;
    }

    public bool Contains(string name) => _owner.ContainsKey(name);

    public torch.Tensor Read(string name, torch.ScalarType? dtype = null)
    {
        if (!_owner.TryGetValue(name, out var file))
            throw new UserInputException($"{Source}: tensor '{name}' is missing from the checkpoint");
        var t = file.Read(name);
        if (dtype is { } d && t.dtype != d)
        {
            var converted = t.to(d);
            t.Dispose();
            return converted;
        }
        return t;
    }

    public torch.Tensor ReadShared(string name)
    {
        if (!_owner.TryGetValue(name, out var file))
            throw new UserInputException($"{Source}: tensor '{name}' is missing from the checkpoint");
        return file.TryMap(name) ?? file.Read(name);
    }

    public void Dispose()
    {
        foreach (var f in _files) f.Dispose();
        _files.Clear();
    }
}
