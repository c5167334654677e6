using FinQLoRA.Models;
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace FinQLoRA.Quantization;

/// <summary>
/// The <c>quantization_config</c> object of a quantized model's config.json, as transformers'
/// <c>BitsAndBytesConfig.to_dict()</c> writes it for <c>load_in_4bit</c> / <c>load_in_8bit</c> (keys in its sorted order).
/// </summary>
public static class BitsAndBytesConfig
{
    public static JsonObject ToJson(QuantizationOptions options, ScalarType computeDtype = ScalarType.BFloat16)
    {
        options.Validate();
        if (options.Bits == 16)
            throw new UserInputException("quantization_config: a 16-bit model is not quantized and has no quantization_config");
        bool four = options.Bits == 4;
        return new JsonObject
        {
            ["_load_in_4bit"] = four,
            ["_load_in_8bit"] = !four,
            // transformers' defaults for the 4-bit fields when they are unused: float32 compute, fp4, no double quant
            ["bnb_4bit_compute_dtype"] = four ? TorchDtypeNames.Name(computeDtype) : "float32",
            ["bnb_4bit_quant_storage"] = "uint8",
            ["bnb_4bit_quant_type"] = four ? FourBitTypes.Spellings.Name(options.Kind) : "fp4",
            ["bnb_4bit_use_double_quant"] = four && options.DoubleQuant,
            ["llm_int8_enable_fp32_cpu_offload"] = false,
            ["llm_int8_has_fp16_weight"] = false,
            ["llm_int8_skip_modules"] = null,
            // parsed from Python's repr so it is written as 6.0, as Python's json does, not 6
            ["llm_int8_threshold"] = JsonNode.Parse(PythonFloat.Repr(options.Int8Threshold)),
            ["load_in_4bit"] = four,
            ["load_in_8bit"] = !four,
            ["quant_method"] = "bitsandbytes",
        };
    }

    /// <summary>Reads a config.json <c>quantization_config</c> back into options (<paramref name="source"/> names the file in errors).</summary>
    public static QuantizationOptions FromJson(JsonObject config, string source)
    {
        string method = config["quant_method"]?.GetValue<string>() ?? "bitsandbytes";
        if (method != "bitsandbytes")
            throw new UserInputException($"{source}: quantization_config.quant_method '{method}' is not supported; FinQLoRA reads bitsandbytes 4-bit and 8-bit models");
        bool four = Flag(config, "load_in_4bit") || Flag(config, "_load_in_4bit");
        bool eight = Flag(config, "load_in_8bit") || Flag(config, "_load_in_8bit");
        if (four == eight)
            throw new UserInputException($"{source}: quantization_config must set exactly one of load_in_4bit / load_in_8bit");
        string kind = config["bnb_4bit_quant_type"]?.GetValue<string>() ?? "fp4";
        return new QuantizationOptions(
            Bits: four ? 4 : 8,
            Kind: FourBitTypes.Spellings.TryParse(kind, out var type) ? type
                : throw new UserInputException($"{source}: bnb_4bit_quant_type '{kind}' is not nf4 or fp4"),
            DoubleQuant: Flag(config, "bnb_4bit_use_double_quant"),
            Int8Threshold: config["llm_int8_threshold"]?.GetValue<double>() ?? 6.0).Validate();
    }

    private static bool Flag(JsonObject config, string key) => config[key] is JsonValue v && v.GetValue<bool>();
}
