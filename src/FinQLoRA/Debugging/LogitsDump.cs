using System.Text.Json.Nodes;
using FinQLoRA.Adapters;
using FinQLoRA.Loading;
using FinQLoRA.Runtime;
using static TorchSharp.torch;

namespace FinQLoRA.Debugging;

/// <summary>
/// <c>finqlora debug dump-logits</c>: the prompt through the model once, without a cache, writing the logits of every
/// position ("logits", fp32 [T, vocab], row t predicting token t + 1) and the prompt's ids ("input_ids", int64 [T]).
/// The model, its quantization and the adapter load as <c>generate</c> loads them, so the last row is the one generate's
/// prefill picks its first token from; the same prompt on cpu and on cuda gives two files a script can compare.
/// </summary>
public static class LogitsDump
{
    public const string Command = "dump-logits";

    public static DebugDumpResult Run(LogitsDumpOptions o)
    {
        DebugDump.Check(o.ModelPath, o.OutPath, o.Overwrite, ("adapter", o.Adapter));
        if (string.IsNullOrEmpty(o.Prompt)) throw UserInputException.About($"{new ConfigField("prompt")} is required and must not be empty");
        var tokenizer = ModelLoading.LoadTokenizer(o.ModelPath);
        int[] ids = tokenizer.Encode(o.Prompt, addBos: tokenizer.AddsBosByDefault);
        if (ids.Length == 0) throw UserInputException.About($"{new ConfigField("prompt")} encodes to no tokens; give some text");
        using var model = ModelLoading.LoadModel(o.ModelPath, o.Load);
        if (ids.Length > model.Config.MaxPositionEmbeddings)
            throw UserInputException.About($"{new ConfigField("prompt")} has {ids.Length} tokens, more than the model's {model.Config.MaxPositionEmbeddings} positions; shorten it");
        if (o.Adapter is { } adapter) PeftAdapterFiles.Load(adapter, model);

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        model.eval();
        var input = tensor(ids.Select(i => (long)i).ToArray(), [1, ids.Length], device: model.Device);
        var logits = model.Forward(input).squeeze(0).to(ScalarType.Float32).cpu();                // [T, vocab]
        var inputIds = tensor(ids.Select(i => (long)i).ToArray());                                  // [T]
        var details = new JsonObject
        {
            ["prompt"] = o.Prompt,
            ["adapter"] = o.Adapter is { } a ? Path.GetFullPath(a) : null,
            ["dtype"] = model.ComputeDType.ToString(),
        };
        return DebugDump.Write(o.OutPath, Command, o.ModelPath, ComputeDevice.From(model.Device),
            [new("logits", logits), new("input_ids", inputIds)], details);
    }
}
