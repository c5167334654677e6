using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using FinQLoRA.Models;

namespace FinQLoRA.Adapters;

/// <summary>
/// PEFT's <c>adapter_config.json</c> for a LoRA adapter on a causal LM: written with every key of a real PEFT file
/// (FinLoRA's published adapters), read leniently (missing keys take PEFT's defaults) but strictly about what we
/// cannot honour (per-module rank/alpha patterns, LoRA biases, modules_to_save, fan_in_fan_out).
/// </summary>
public static class PeftAdapterConfig
{
    public const string FileName = "adapter_config.json";

    /// <summary>The JSON PEFT writes, in the key order of a real file.</summary>
    public static JsonObject ToJson(LoraConfig config, IReadOnlyList<ProjectionKind> targets) => new()
    {
        ["peft_type"] = "LORA",
        ["task_type"] = "CAUSAL_LM",
        ["base_model_name_or_path"] = config.BaseModelNameOrPath,
        ["r"] = config.Rank,
        ["lora_alpha"] = Number(config.Alpha),
        ["lora_dropout"] = config.Dropout,
        ["target_modules"] = new JsonArray(LoraTargets.Names(targets).Select(t => (JsonNode)t).ToArray()),
        ["bias"] = "none",
        ["fan_in_fan_out"] = false,
        ["inference_mode"] = true,
        ["init_lora_weights"] = true,
        ["use_dora"] = config.UseDora,
        ["use_rslora"] = config.UseRsLora,
        ["lora_bias"] = false,
        ["modules_to_save"] = null,
        ["rank_pattern"] = new JsonObject(),
        ["alpha_pattern"] = new JsonObject(),
        ["layers_to_transform"] = null,
        ["layers_pattern"] = null,
        ["loftq_config"] = new JsonObject(),
        ["megatron_config"] = null,
        ["megatron_core"] = "megatron.core",
        ["layer_replication"] = null,
        ["exclude_modules"] = null,
        ["trainable_token_indices"] = null,
        ["eva_config"] = null,
        ["corda_config"] = null,
        ["revision"] = null,
        ["auto_mapping"] = null,
    };

    /// <summary>Reads an adapter_config.json. <see cref="PeftAdapterSpec.TargetPattern"/> is set when target_modules is a
    /// regular expression (PEFT full-matches a string against module paths) rather than a list of names.</summary>
    public static PeftAdapterSpec Read(string path)
    {
        if (!File.Exists(path))
            throw new UserInputException($"{path}: not found; a PEFT adapter folder holds {FileName} and adapter_model.safetensors");
        JsonObject o;
        try { o = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new UserInputException($"{path}: not a JSON object"); }
        catch (JsonException e) { throw new UserInputException($"{path}: malformed JSON ({e.Message})"); }

        string peftType = Str(o, "peft_type", path) ?? "LORA";
        if (peftType != "LORA") throw new UserInputException($"{path}: peft_type is '{peftType}'; only LORA adapters (plain, rsLoRA or DoRA) are supported");
        if (Str(o, "task_type", path) is { } task && task != "CAUSAL_LM")
            throw new UserInputException($"{path}: task_type is '{task}'; only CAUSAL_LM adapters apply to a decoder language model");
        RequireDefault(o, path, "bias", "none", "LoRA bias terms are not supported");
        if (Bool(o, "lora_bias", path) == true) throw new UserInputException($"{path}: lora_bias is true; LoRA bias terms are not supported");
        if (Bool(o, "fan_in_fan_out", path) == true) throw new UserInputException($"{path}: fan_in_fan_out is true; that layout is for GPT-2 Conv1D layers, not the nn.Linear projections of the supported families");
        if (o["modules_to_save"] is JsonArray { Count: > 0 }) throw new UserInputException($"{path}: modules_to_save is set; adapters that also save full modules are not supported");
        foreach (string key in new[] { "rank_pattern", "alpha_pattern" })
            if (o[key] is JsonObject { Count: > 0 }) throw new UserInputException($"{path}: {key} is not empty; per-module ranks/alphas are not supported");
        if (o["layer_replication"] is JsonArray { Count: > 0 }) throw new UserInputException($"{path}: layer_replication is set; it is not supported");

        int rank = o["r"] is JsonValue rv && rv.TryGetValue(out int r) ? r : throw new UserInputException($"{path}: 'r' is missing or not an integer");
        double alpha = Num(o, "lora_alpha", path) ?? 8; // PEFT's default
        double dropout = Num(o, "lora_dropout", path) ?? 0;

        // Names are checked here against every family's module names; which of them the model has is checked when
        // the adapter is loaded onto it (LoraTargets.Resolve), as PEFT only finds out once it sees the model.
        IReadOnlyList<string> targets;
        string? pattern = null;
        switch (o["target_modules"])
        {
            case JsonArray list:
                targets = LoraTargets.Parse(list.Select(n => n?.GetValue<string>() ?? ""), path);
                break;
            case JsonValue v when v.TryGetValue(out string? s) && s is not null:
                if (LoraTargets.IsAllLinear(s) || ModelLayout.ParseModuleName(s) is not null) targets = LoraTargets.Parse([s], path);
                else
                {
                    try { _ = new Regex(s); }
                    catch (ArgumentException) { throw new UserInputException($"{path}: target_modules '{s}' is neither a module name nor a valid regular expression"); }
                    targets = [LoraTargets.AllLinear];
                    pattern = s;
                }
                break;
            default:
                throw new UserInputException($"{path}: target_modules is missing; expected a list of names such as [\"q_proj\", \"v_proj\"] or a string");
        }

        var config = new LoraConfig
        {
            Rank = rank,
            Alpha = alpha,
            Dropout = dropout,
            TargetModules = targets,
            UseRsLora = Bool(o, "use_rslora", path) ?? false,
            UseDora = Bool(o, "use_dora", path) ?? false,
            BaseModelNameOrPath = Str(o, "base_model_name_or_path", path),
        };
        config.Validate(path);
        return new PeftAdapterSpec(config, pattern);
    }

    private static JsonNode Number(double x) => x == Math.Floor(x) && Math.Abs(x) < 1e15 ? JsonValue.Create((long)x) : JsonValue.Create(x);

    private static void RequireDefault(JsonObject o, string path, string key, string expected, string why)
    {
        if (Str(o, key, path) is { } v && v != expected) throw new UserInputException($"{path}: {key} is '{v}'; {why}");
    }

    private static string? Str(JsonObject o, string key, string path) => o[key] switch
    {
        null => null,
        JsonValue v when v.TryGetValue(out string? s) => s,
        var other => throw new UserInputException($"{path}: '{key}' should be a string, found {other.ToJsonString()}"),
    };

    private static bool? Bool(JsonObject o, string key, string path) => o[key] switch
    {
        null => null,
        JsonValue v when v.TryGetValue(out bool b) => b,
        var other => throw new UserInputException($"{path}: '{key}' should be true or false, found {other.ToJsonString()}"),
    };

    private static double? Num(JsonObject o, string key, string path) => o[key] switch
    {
        null => null,
        JsonValue v when v.TryGetValue(out double d) => d,
        var other => throw new UserInputException($"{path}: '{key}' should be a number, found {other.ToJsonString()}"),
    };
}
