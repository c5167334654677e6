using System.Text;
using System.Text.Json;
using YamlDotNet.RepresentationModel;

namespace FinQLoRA.Server.Tenancy;

/// <summary>
/// Reads a keys file's syntax, YAML or JSON by its extension, into entries of <see cref="KeysFileValue"/>s: the top
/// level a mapping with the one key <c>keys</c>, a list of mappings. What the values mean is
/// <see cref="KeysFile"/>'s to check; this knows only the two syntaxes.
/// </summary>
internal static class KeysFileFormat
{
    public sealed record Entry(string Where, IReadOnlyList<(string Key, KeysFileValue Value)> Fields);

    public static bool IsJson(string path) => Path.GetExtension(path).Equals(".json", StringComparison.OrdinalIgnoreCase);

    /// <summary>Throws <see cref="UserInputException"/> naming the file for an extension that is neither.</summary>
    public static void CheckExtension(string path)
    {
        string ext = Path.GetExtension(path).ToLowerInvariant();
        if (ext is not (".yaml" or ".yml" or ".json"))
            throw new UserInputException($"{path}: a keys file is YAML (.yaml, .yml) or JSON (.json), read by its extension; rename it accordingly");
    }

    public static List<Entry> Read(string path, string text)
    {
        CheckExtension(path);
        if (string.IsNullOrWhiteSpace(text)) return []; // a new file, or one emptied by hand
        return IsJson(path) ? ReadJson(path, text) : ReadYaml(path, text);
    }

    private static List<Entry> ReadYaml(string path, string text)
    {
        var yaml = new YamlStream();
        try { yaml.Load(new StringReader(text)); }
        catch (YamlDotNet.Core.YamlException e) { throw new UserInputException($"{path}:{e.Start.Line}: not valid YAML ({e.Message}); fix the syntax there"); }
        if (yaml.Documents.Count == 0) return [];
        if (yaml.Documents.Count > 1) throw new UserInputException($"{path}: holds {yaml.Documents.Count} YAML documents; keep one ('keys:' with a list of entries)");
        if (yaml.Documents[0].RootNode is not YamlMappingNode root)
            throw new UserInputException($"{path}: the top level must be a mapping with the key 'keys' (a list of entries)");
        YamlSequenceNode? list = null;
        foreach (var (k, v) in root.Children)
        {
            string key = (k as YamlScalarNode)?.Value ?? "";
            if (key != "keys") throw new UserInputException($"{path}:{k.Start.Line}: {key}: unknown key at the top level; the file holds only 'keys' (a list of entries)");
            list = v as YamlSequenceNode
                ?? (v is YamlScalarNode { Value: null or "" } ? new YamlSequenceNode() // 'keys:' with nothing after it
                : throw new UserInputException($"{path}:{v.Start.Line}: keys: must be a list of entries ('- id: …')"));
        }
        if (list is null) return [];
        var entries = new List<Entry>();
        int i = 0;
        foreach (var node in list.Children)
        {
            string where = $"keys[{i}]";
            if (node is not YamlMappingNode map)
                throw new UserInputException($"{path}:{node.Start.Line}: {where}: an entry must be a mapping (id, sha256, models, …)");
            var fields = new List<(string, KeysFileValue)>();
            foreach (var (k, v) in map.Children)
            {
                string key = (k as YamlScalarNode)?.Value ?? "";
                fields.Add((key, Yaml(v, $"{path}:{v.Start.Line}: {where}.{key}")));
            }
            entries.Add(new Entry($"{path}:{node.Start.Line}: {where}", fields));
            i++;
        }
        return entries;
    }

    private static KeysFileValue Yaml(YamlNode node, string where) => node switch
    {
        YamlScalarNode s when s.Style is YamlDotNet.Core.ScalarStyle.Plain => new(KeysFileValue.Kinds.Plain, where, s.Value ?? ""),
        YamlScalarNode s => new(KeysFileValue.Kinds.String, where, s.Value ?? ""),
        YamlSequenceNode l => new(KeysFileValue.Kinds.List, where, Items: [.. l.Children.Select((c, j) => Yaml(c, $"{where}[{j}]"))]),
        _ => new(KeysFileValue.Kinds.Other, where),
    };

    private static List<Entry> ReadJson(string path, string text)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(text, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip }); }
        catch (JsonException e) { throw new UserInputException($"{path}: not valid JSON (line {(e.LineNumber ?? 0) + 1}: {e.Message}); fix the syntax there"); }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new UserInputException($"{path}: the top level must be an object with the key \"keys\" (a list of entries)");
            var entries = new List<Entry>();
            bool seen = false;
            foreach (var top in root.EnumerateObject())
            {
                if (top.Name != "keys") throw new UserInputException($"{path}: {top.Name}: unknown key at the top level; the file holds only \"keys\" (a list of entries)");
                if (seen) throw new UserInputException($"{path}: keys: given twice; keep one list");
                seen = true;
                if (top.Value.ValueKind != JsonValueKind.Array) throw new UserInputException($"{path}: keys: must be a list of entries");
                int i = 0;
                foreach (var item in top.Value.EnumerateArray())
                {
                    string where = $"keys[{i}]";
                    if (item.ValueKind != JsonValueKind.Object) throw new UserInputException($"{path}: {where}: an entry must be an object (id, sha256, models, …)");
                    entries.Add(new Entry($"{path}: {where}", [.. item.EnumerateObject().Select(p => (p.Name, Json(p.Value, $"{path}: {where}.{p.Name}")))]));
                    i++;
                }
            }
            return entries;
        }
    }

    private static KeysFileValue Json(JsonElement e, string where) => e.ValueKind switch
    {
        JsonValueKind.String => new(KeysFileValue.Kinds.String, where, e.GetString()),
        JsonValueKind.Number => new(KeysFileValue.Kinds.Number, where, e.GetRawText()),
        JsonValueKind.True or JsonValueKind.False => new(KeysFileValue.Kinds.Bool, where, e.GetRawText()),
        JsonValueKind.Array => new(KeysFileValue.Kinds.List, where, Items: [.. e.EnumerateArray().Select((c, j) => Json(c, $"{where}[{j}]"))]),
        _ => new(KeysFileValue.Kinds.Other, where),
    };

    /// <summary>The file's text as its format writes the entries, with a comment saying what it is (YAML).</summary>
    public static string Write(string path, IReadOnlyList<TenantKey> keys)
    {
        if (IsJson(path))
        {
            using var buffer = new MemoryStream();
            using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
            {
                w.WriteStartObject();
                w.WriteStartArray("keys");
                foreach (var k in keys)
                {
                    w.WriteStartObject();
                    w.WriteString("id", k.Id);
                    w.WriteString("sha256", ApiKeyHash.Hex(k.Sha256));
                    w.WriteStartArray("models");
                    foreach (string p in k.Models.Patterns) w.WriteStringValue(p);
                    w.WriteEndArray();
                    if (k.RequestsPerMinute is { } rpm) w.WriteNumber("requests_per_minute", rpm);
                    if (k.TokensPerMinute is { } tpm) w.WriteNumber("tokens_per_minute", tpm);
                    if (k.CanManageAdapters) w.WriteBoolean("can_manage_adapters", true);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                w.WriteEndObject();
            }
            return Encoding.UTF8.GetString(buffer.ToArray()) + "\n";
        }
        var text = new StringBuilder();
        text.Append("# finqlora serve --keys: one entry per API key; sha256 is the hex SHA-256 of the key, never the key (finqlora serve-keys add)\n");
        text.Append("keys:\n");
        foreach (var k in keys) text.Append(YamlEntry(k, "  "));
        return text.ToString();
    }

    /// <summary>One entry as a YAML block list item at <paramref name="indent"/>; strings double-quoted (JSON's escapes
    /// are YAML's), so a pattern starting with '*' is not read as an alias.</summary>
    public static string YamlEntry(TenantKey k, string indent)
    {
        var text = new StringBuilder();
        string Q(string s) => JsonSerializer.Serialize(s, Common.OpenAiJsonContext.Default.String);
        text.Append($"{indent}- id: {Q(k.Id)}\n");
        text.Append($"{indent}  sha256: {ApiKeyHash.Hex(k.Sha256)}\n");
        text.Append($"{indent}  models: [{string.Join(", ", k.Models.Patterns.Select(Q))}]\n");
        if (k.RequestsPerMinute is { } rpm) text.Append($"{indent}  requests_per_minute: {rpm}\n");
        if (k.TokensPerMinute is { } tpm) text.Append($"{indent}  tokens_per_minute: {tpm}\n");
        if (k.CanManageAdapters) text.Append($"{indent}  can_manage_adapters: true\n");
        return text.ToString();
    }
}
