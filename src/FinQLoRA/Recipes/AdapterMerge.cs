using FinQLoRA.Adapters;
using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Formats.Gguf;
using FinQLoRA.Quantization;
using static TorchSharp.torch;
using FinQLoRA.Formats.Tokenizers;

namespace FinQLoRA.Recipes;

/// <summary>
/// <c>finqlora merge</c>: loads the base (quantized as in training when <see cref="AdapterMergeOptions.Bits"/> is 4 or 8),
/// loads the PEFT adapter, and writes W = W₀ + s·B·A (DoRA: its magnitude-normalised form) as a 16/32-bit HF folder
/// with the base's tensor names, config and tokenizer files — or as GGUF, by converting that folder.
/// </summary>
public static class AdapterMerge
{
    public static AdapterMergeResult Run(AdapterMergeOptions o)
    {
        string to = o.To.ToLowerInvariant();
        if (to is not ("hf" or "gguf")) throw UserInputException.About($"{new ConfigField("to")} '{o.To}' is not one of hf, gguf");
        Runtime.ComputeDtypes.Require(o.DType);
        if (!File.Exists(o.ModelPath) && !Directory.Exists(o.ModelPath))
            throw UserInputException.About($"{new ConfigField("model")} {o.ModelPath}: not found; give an HF model folder or a .gguf file");
        string[] inputs = [o.ModelPath, o.AdapterDir];
        if (to == "hf") IO.OutputPlacement.CheckFolder(o.OutPath, inputs, o.Overwrite);
        else IO.OutputPlacement.CheckFile(o.OutPath, inputs, o.Overwrite);

        var load = new ModelLoadOptions { DType = o.DType }.WithBits(o.Bits, o.Quant, o.DoubleQuant);
        using var model = ModelLoading.LoadModel(o.ModelPath, load);
        model.eval();
        PeftAdapterFiles.Load(o.AdapterDir, model, LoraLinear.DefaultAdapter);
        var wrapped = LoraInjector.Wrapped(model).ToList();
        int merged = wrapped.Count(w => w.Lora.Adapters.ContainsKey(LoraLinear.DefaultAdapter));
        // A checkpoint saved quantized (bitsandbytes) also loads as QuantizedLinear, so look at the layers, not only --bits.
        bool quantized = AnyQuantized(model);

        string tempRoot = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(o.OutPath))!, $".merge-{Guid.NewGuid():N}");
        try
        {
            string baseFolder = o.ModelPath;
            if (File.Exists(o.ModelPath)) baseFolder = TokenizerFolderFromGguf(o.ModelPath, Path.Combine(tempRoot, "tokenizer"));
            string hfOut = to == "hf" ? o.OutPath : Path.Combine(tempRoot, "merged");
            long bytes = MergedModelWriter.WriteHfFolder(model, model.Config, baseFolder, hfOut, o.DType);
            if (to == "gguf")
            {
                var ggml = o.DType switch { ScalarType.Float32 => GgmlType.F32, ScalarType.Float16 => GgmlType.F16, _ => GgmlType.BF16 };
                ModelConverter.HfToGguf(hfOut, o.OutPath, ggml, o.Overwrite);
                bytes = new FileInfo(o.OutPath).Length;
            }
            return new AdapterMergeResult(Path.GetFullPath(o.OutPath), to, merged, quantized, bytes);
        }
        finally
        {
            if (Directory.Exists(tempRoot)) Directory.Delete(tempRoot, recursive: true);
        }
    }

    private static bool AnyQuantized(DecoderModel model) => model.Layers.Any(layer => model.Config.Family.Projections.Any(p =>
        layer[p] switch
        {
            LoraLinear lora => lora.Frozen is QuantizedLinear,
            var m => m is QuantizedLinear,
        }));

    /// <summary>A GGUF base carries its tokenizer inside; the merged HF folder needs it as tokenizer.json.</summary>
    private static string TokenizerFolderFromGguf(string gguf, string folder)
    {
        using var reader = new GgufCheckpointReader(gguf);
        var tokenizer = reader.Tokenizer
            ?? throw new UserInputException($"{gguf}: the GGUF file has no tokenizer; merge from the HF folder of the base instead");
        Directory.CreateDirectory(folder);
        HfTokenizerConverter.WriteHuggingFace(tokenizer, folder, reader.Config.MaxPositionEmbeddings);
        return folder;
    }
}
