using FinQLoRA.Models;
using FinQLoRA.Formats.Checkpoints;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Quantization;

/// <summary>
/// The state-dict entries bitsandbytes writes for quantized linear layers (<c>Linear4bit._save_to_state_dict</c> with
/// <c>QuantState.as_dict(packed=True)</c>, and <c>Linear8bitLt</c>), so checkpoints round-trip with Hugging Face.
/// Keys are <c>{prefix}weight</c>, <c>{prefix}weight.absmax</c>, … where prefix is the module path with a trailing dot
/// (e.g. "model.layers.0.self_attn.q_proj.").
/// </summary>
public static class BitsAndBytesFormat
{
    private const string QuantStatePrefix = "weight.quant_state.bitsandbytes__";

    /// <summary>
    /// The entries for one layer's weight. The tensors share storage with <paramref name="weight"/> (no copies) and
    /// live on its device; the caller owns and disposes the returned tensor objects.
    /// </summary>
    public static Dictionary<string, Tensor> ToStateDict(QuantizedTensor weight, string prefix = "")
    {
        switch (weight)
        {
            case Blockwise4BitTensor q:
            {
                var d = new Dictionary<string, Tensor>
                {
                    [prefix + "weight"] = q.Packed.alias().DetachFromDisposeScope(),
                    [prefix + "weight.absmax"] = (q.IsDoubleQuantized ? q.AbsmaxCodes! : q.Absmax!).alias().DetachFromDisposeScope(),
                    [prefix + "weight.quant_map"] = tensor(q.Code.ToArray()).DetachFromDisposeScope(),
                };
                if (q.IsDoubleQuantized)
                {
                    d[prefix + "weight.nested_absmax"] = q.NestedAbsmax!.alias().DetachFromDisposeScope();
                    d[prefix + "weight.nested_quant_map"] = tensor(q.NestedCode.ToArray()).DetachFromDisposeScope();
                }
                d[prefix + QuantStatePrefix + FourBitTypes.Spellings.Name(q.Type)] = tensor(Encoding.UTF8.GetBytes(QuantStateJson(q))).DetachFromDisposeScope();
                return d;
            }
            case Int8RowwiseTensor q:
                return new Dictionary<string, Tensor>
                {
                    [prefix + "weight"] = q.CB.alias().DetachFromDisposeScope(),
                    [prefix + "SCB"] = q.SCB.alias().DetachFromDisposeScope(),
                    // bitsandbytes stores only row-major now and writes 0 "for backwards compatibility"
                    [prefix + "weight_format"] = tensor((byte)0).DetachFromDisposeScope(),
                };
            default:
                throw new ArgumentException($"no bitsandbytes layout for {weight.GetType().Name}", nameof(weight));
        }
    }

    /// <summary>
    /// The non-tensor quant state as <c>pack_dict_to_tensor</c> encodes it: <c>json.dumps</c> of
    /// quant_type, blocksize, dtype, shape (+ nested_blocksize, nested_dtype, nested_offset), with Python's separators.
    /// </summary>
    public static string QuantStateJson(Blockwise4BitTensor q)
    {
        var sb = new StringBuilder();
        sb.Append("{\"quant_type\": \"").Append(FourBitTypes.Spellings.Name(q.Type)).Append("\", ");
        sb.Append("\"blocksize\": ").Append(q.BlockSize.ToString(CultureInfo.InvariantCulture)).Append(", ");
        sb.Append("\"dtype\": \"").Append(TorchDtypeNames.Name(q.OriginalDtype)).Append("\", ");
        sb.Append("\"shape\": [").Append(string.Join(", ", q.Shape.Select(s => s.ToString(CultureInfo.InvariantCulture)))).Append(']');
        if (q.IsDoubleQuantized)
        {
            sb.Append(", \"nested_blocksize\": ").Append(q.NestedBlockSize.ToString(CultureInfo.InvariantCulture));
            sb.Append(", \"nested_dtype\": \"float32\"");
            sb.Append(", \"nested_offset\": ").Append(PythonFloat.Repr(q.NestedOffset));
        }
        return sb.Append('}').ToString();
    }

    /// <summary>True when the entries under <paramref name="prefix"/> hold a bitsandbytes 4-bit or 8-bit weight.</summary>
    public static bool IsQuantized(IReadOnlyDictionary<string, Tensor> entries, string prefix = "") =>
        FourBitTypes.Spellings.Names.Any(t => entries.ContainsKey(prefix + QuantStatePrefix + t)) || entries.ContainsKey(prefix + "SCB");

    /// <summary>
    /// Rebuilds a quantized weight from bitsandbytes state-dict entries, using the stored code tables (quant_map,
    /// nested_quant_map) rather than ours. The result owns copies of the tensors on <paramref name="device"/> (default CPU).
    /// <paramref name="int8OriginalDtype"/> names the dtype of an int8 weight before quantization (int8 entries do not record it).
    /// </summary>
    public static QuantizedTensor FromStateDict(IReadOnlyDictionary<string, Tensor> entries, string prefix = "",
        Device? device = null, ScalarType int8OriginalDtype = ScalarType.BFloat16)
    {
        device ??= CPU;
        using var scope = NewDisposeScope();
        string? stateKey = FourBitTypes.Spellings.Names.Select(t => prefix + QuantStatePrefix + t).FirstOrDefault(entries.ContainsKey);
        if (stateKey != null)
            return Read4Bit(entries, prefix, stateKey, device);
        if (entries.ContainsKey(prefix + "SCB"))
        {
            Tensor cb = Require(entries, prefix + "weight", t => t == ScalarType.Int8, "I8 (LLM.int8 row-wise weights)");
            if (entries.TryGetValue(prefix + "weight_format", out var format) && format.to(ScalarType.Int64).item<long>() != 0)
                throw new UserInputException($"{prefix}weight_format: {format.to(ScalarType.Int64).item<long>()} is a bitsandbytes tiled layout; only row-major (0) int8 weights can be read — re-save with a current bitsandbytes");
            return new Int8RowwiseTensor(cb.shape, int8OriginalDtype, cb.to(device), RequireFloat(entries, prefix + "SCB").to(ScalarType.Float32).to(device));
        }
        throw new UserInputException($"{prefix}weight: no bitsandbytes quant state found (expected '{prefix}{QuantStatePrefix}nf4', '…fp4' or '{prefix}SCB')");
    }

    private static Blockwise4BitTensor Read4Bit(IReadOnlyDictionary<string, Tensor> entries, string prefix, string stateKey, Device device)
    {
        Tensor stateBytes = Require(entries, stateKey, t => t == ScalarType.Byte, "U8 (the quant state's JSON bytes)");
        JsonObject state;
        try
        {
            byte[] raw = stateBytes.to(ScalarType.Byte).cpu().contiguous().data<byte>().ToArray();
            state = JsonNode.Parse(Encoding.UTF8.GetString(raw)) as JsonObject
                    ?? throw new UserInputException($"{stateKey}: quant state is not a JSON object");
        }
        catch (JsonException e)
        {
            throw new UserInputException($"{stateKey}: quant state is not valid JSON ({e.Message})");
        }

        string quantType = Field<string>(state, "quant_type", stateKey);
        if (!FourBitTypes.Spellings.TryParse(quantType, out FourBitType type))
            throw new UserInputException($"{stateKey}: quant_type '{quantType}' is not nf4 or fp4");
        int blockSize = Field<int>(state, "blocksize", stateKey);
        ScalarType dtype = TorchDtypeNames.Parse(Field<string>(state, "dtype", stateKey), stateKey);
        long[] shape = (state["shape"] as JsonArray ?? throw new UserInputException($"{stateKey}: 'shape' is missing"))
            .Select(v => v!.GetValue<long>()).ToArray();

        Tensor packed = Require(entries, prefix + "weight");
        if (packed.dtype != ScalarType.Byte)
            throw new UserInputException($"{prefix}weight: packed 4-bit data stored as {packed.dtype}; only bnb_4bit_quant_storage=uint8 is supported — re-save with uint8 storage");
        float[] code = FloatArray(RequireFloat(entries, prefix + "weight.quant_map"));
        bool doubleQuant = entries.ContainsKey(prefix + "weight.nested_absmax");
        // Double quantization stores absmax as 8-bit codes; plain 4-bit stores it as floats.
        Tensor absmax = doubleQuant
            ? Require(entries, prefix + "weight.absmax", t => t == ScalarType.Byte, "U8 (double-quantized absmax codes)")
            : RequireFloat(entries, prefix + "weight.absmax");

        Blockwise4BitTensor.NestedScales? nested = null;
        if (doubleQuant)
        {
            float offset = (float)Field<double>(state, "nested_offset", stateKey);
            int nestedBlockSize = Field<int>(state, "nested_blocksize", stateKey);
            nested = new Blockwise4BitTensor.NestedScales(absmax.to(device),
                RequireFloat(entries, prefix + "weight.nested_absmax").to(ScalarType.Float32).to(device), offset,
                FloatArray(RequireFloat(entries, prefix + "weight.nested_quant_map")), nestedBlockSize);
        }
        return new Blockwise4BitTensor(shape, dtype, type, blockSize, packed.reshape(-1, 1).to(device),
            nested is null ? absmax.to(ScalarType.Float32).to(device) : null, code, nested);
    }

    private static T Field<T>(JsonObject state, string key, string source)
    {
        try
        {
            if (state[key] is JsonValue v) return v.GetValue<T>();
        }
        catch (Exception e) when (e is FormatException or InvalidOperationException) { }
        throw new UserInputException($"{source}: quant state field '{key}' is missing or not a {typeof(T).Name}");
    }

    private static Tensor Require(IReadOnlyDictionary<string, Tensor> entries, string key) =>
        entries.TryGetValue(key, out var t) ? t : throw new UserInputException($"{key}: missing from the checkpoint (bitsandbytes quantized layers need it)");

    /// <summary>An entry whose dtype fits its role: a scale stored as integers, or codes stored as floats, would be
    /// converted silently into a different (garbage) layer.</summary>
    private static Tensor Require(IReadOnlyDictionary<string, Tensor> entries, string key, Func<ScalarType, bool> fits, string expected)
    {
        Tensor t = Require(entries, key);
        if (!fits(t.dtype))
            throw new UserInputException($"{key}: stored as {SafetensorsDTypes.Name(t.dtype)}, but bitsandbytes stores it as {expected}; the checkpoint is damaged — quantize it again");
        return t;
    }

    private static Tensor RequireFloat(IReadOnlyDictionary<string, Tensor> entries, string key) =>
        Require(entries, key, FloatTensors.IsFloat, "a float (F32, F16, BF16 or F64)");

    private static float[] FloatArray(Tensor t) => t.to(ScalarType.Float32).cpu().contiguous().data<float>().ToArray();
}
