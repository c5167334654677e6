using FinQLoRA.Formats.Checkpoints;
using FinQLoRA.Models;
using FinQLoRA.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Loading;

/// <summary>
/// The projections of a checkpoint saved already quantized by bitsandbytes (config.json <c>quantization_config</c>
/// with <c>quant_method: "bitsandbytes"</c>: our <c>finqlora quantize</c> output and the common <c>*-bnb-4bit</c>
/// uploads). Each projection is rebuilt from its stored entries (<c>weight</c>, <c>weight.absmax</c>, …, or
/// <c>weight</c> + <c>SCB</c>) as a <see cref="QuantizedLinear"/>, exactly as saved: no dequantize/requantize round trip.
/// A projection stored dense (a module in <c>llm_int8_skip_modules</c>) is left to the loader's normal path.
/// </summary>
public sealed class PrequantizedProjections
{
    private const string QuantStatePrefix = "weight.quant_state.bitsandbytes__";

    private readonly ICheckpointReader _reader;
    private readonly ModelLoadOptions _options;
    private readonly QuantizationOptions _quantization;
    private readonly ScalarType _storedDtype;

    private PrequantizedProjections(ICheckpointReader reader, ModelLoadOptions options, QuantizationOptions quantization, ScalarType storedDtype)
    {
        _reader = reader;
        _options = options;
        _quantization = quantization;
        _storedDtype = storedDtype;
    }

    /// <summary>The bitsandbytes settings from config.json (int8 threshold, bits).</summary>
    public QuantizationOptions Quantization => _quantization;

    /// <summary>
    /// Null when the config has no <c>quantization_config</c>; throws <see cref="UserInputException"/> when it names
    /// a method other than bitsandbytes (GPTQ, AWQ, … are not supported).
    /// </summary>
    public static PrequantizedProjections? For(ModelConfig config, ICheckpointReader reader, ModelLoadOptions options)
    {
        if (config.QuantizationConfig is null) return null;
        string source = Path.Combine(reader.Source, "config.json");
        var quantization = BitsAndBytesConfig.FromJson(config.QuantizationConfig, source);
        // int8 entries do not record the dtype the weight had; the model's torch_dtype is what it was cast to before quantizing
        ScalarType stored = TorchDtypeNames.TryParse(config.TorchDtype, out var named) ? named : ScalarType.Float16;
        return new PrequantizedProjections(reader, options, quantization, stored);
    }

    /// <summary>True when <paramref name="weightName"/> ("….q_proj.weight") is stored in a bitsandbytes layout.</summary>
    public bool IsStoredQuantized(string weightName)
    {
        string prefix = Prefix(weightName);
        return _reader.Contains(prefix + QuantStatePrefix + "nf4") || _reader.Contains(prefix + QuantStatePrefix + "fp4")
            || _reader.Contains(prefix + "SCB");
    }

    /// <summary>
    /// The quantized layer for <paramref name="weightName"/> with logical shape <paramref name="shape"/> [out, in],
    /// on the load device; null when that projection is stored dense.
    /// </summary>
    public QuantizedLinear? TryLoad(string weightName, long[] shape)
    {
        if (!IsStoredQuantized(weightName)) return null;
        string prefix = Prefix(weightName);
        // used as stored (no dequantize/requantize), so they can be views of the file
        var entries = _reader.ReadPrefixed(prefix, shared: _options.MapWeights);
        try
        {
            QuantizedTensor weight;
            // The format's messages name the entry; this names the file it came from.
            try { weight = BitsAndBytesFormat.FromStateDict(entries, prefix, _options.Device, _storedDtype); }
            catch (UserInputException e) { throw new UserInputException($"{_reader.Source}: {e.Message}", e); }
            if (!weight.Shape.SequenceEqual(shape))
            {
                string found = string.Join(", ", weight.Shape);
                weight.Dispose();
                throw new UserInputException($"{_reader.Source}: quantized tensor '{weightName}' has shape [{found}] but the config implies [{string.Join(", ", shape)}]; config.json and the weights disagree");
            }
            // No bias here even where the checkpoint stores one beside the weight (Qwen2's q/k/v, Phi-3's qkv): the
            // loader gives it to the projection's section, which adds it after the projection and any adapter
            // (ProjectionSet); a bias inside this layer too would be added twice.
            return new QuantizedLinear(weight, bias: null, _quantization.Int8Threshold);
        }
        finally
        {
            foreach (var t in entries.Values) t.Dispose();
        }
    }

    private static string Prefix(string weightName) =>
        weightName.EndsWith("weight", StringComparison.Ordinal)
            ? weightName[..^"weight".Length]
            : throw new ArgumentException($"'{weightName}' is not a weight name", nameof(weightName));
}
