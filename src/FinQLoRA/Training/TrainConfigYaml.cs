using YamlDotNet.RepresentationModel;

namespace FinQLoRA.Training;

public sealed partial record TrainConfig
{
    /// <summary>Reads a YAML run config (a flat mapping of the keys of <see cref="TrainKeys"/>) as text values.</summary>
    public static Dictionary<string, string> ReadYaml(string path)
    {
        if (!File.Exists(path)) throw new UserInputException($"{path}: config file not found");
        var yaml = new YamlStream();
        try { using var reader = new StreamReader(path); yaml.Load(reader); }
        catch (YamlDotNet.Core.YamlException e) { throw new UserInputException($"{path}: not valid YAML (line {e.Start.Line}: {e.Message})"); }
        var values = new Dictionary<string, string>();
        if (yaml.Documents.Count == 0) return values;
        if (yaml.Documents[0].RootNode is not YamlMappingNode map)
            throw new UserInputException($"{path}: expected a mapping of keys to values at the top level");
        foreach (var (k, v) in map.Children)
        {
            string key = ((YamlScalarNode)k).Value ?? "";
            // data may list several sources (a task family): one per line internally
            if (key == "data" && v is YamlSequenceNode list && list.Children.All(c => c is YamlScalarNode))
            {
                values[key] = string.Join(DataSource.Separator, list.Children.Select(c => ((YamlScalarNode)c).Value ?? ""));
                continue;
            }
            if (v is not YamlScalarNode scalar)
                throw new UserInputException($"{path}: key '{key}' must have a single value");
            values[key] = scalar.Value ?? "";
        }
        return values;
    }
}
