using System.Text;
using FinQLoRA.Data.Jsonl;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Fuzz;

/// <summary>
/// The malformed inputs and the command that reads each. Text inputs are files under <c>corpus/</c>; binary ones
/// (safetensors, GGUF, non-UTF-8 text) are made here from a corpus header or field by field, so the repo holds no
/// opaque blobs. Each must end in exit 2 with one line on stderr, nothing on stdout and no file written.
/// </summary>
internal static class FuzzCorpus
{
    private static string[] Generate(string model, params string[] more) =>
        ["generate", "--model", model, "--prompt", "hi", "--max-new-tokens", "1", "--dtype", "f32", .. more];

    private static string[] Stats(string file) => ["data", "stats", file];

    private static string[] Score(string file) => ["score", "--task", "fpb", "--predictions", file];

    private static string[] Train(FuzzWork w, string config) =>
        ["train", "--config", config, "--model", w.Inputs.Model, "--data", w.GoodData(), "--out", w.Out("run")];

    /// <summary>A model folder whose model.safetensors is the corpus header with <paramref name="dataBytes"/> of data.</summary>
    private static FuzzCase Safetensors(string name, int dataBytes) => new($"safetensors/{name}", w =>
    {
        string model = w.Model();
        File.WriteAllBytes(Path.Combine(model, "model.safetensors"), SafetensorsBytes.Of(Encoding.UTF8.GetString(w.CorpusBytes($"safetensors/{name}.json")), dataBytes));
        return Generate(model);
    });

    private static FuzzCase Gguf(string name, Func<byte[]> bytes) => new($"gguf/{name}", w => Generate(w.Write("model.gguf", bytes())));

    private static FuzzCase ConfigCase(string name) => new($"config/{name}", w =>
    {
        string model = w.Model();
        File.Copy(Path.Combine(FuzzInputs.Corpus, "config", name + ".json"), Path.Combine(model, "config.json"), overwrite: true);
        return Generate(model);
    });

    private static FuzzCase AdapterConfig(string name) => new($"adapter/{name}", w =>
    {
        string adapter = w.Adapter();
        File.Copy(Path.Combine(FuzzInputs.Corpus, "adapter", name + ".json"), Path.Combine(adapter, "adapter_config.json"), overwrite: true);
        return Generate(w.Inputs.Model, "--adapter", adapter);
    });

    private const uint F32 = 0, F64 = 28;

    public static readonly IReadOnlyList<FuzzCase> All =
    [
        // JSONL: one reader (JsonlLines) behind data stats, data build, score and tokenize
        new("jsonl/invalid-json", w => Stats(w.Corpus("jsonl/invalid-json.jsonl"))),
        new("jsonl/not-an-object", w => Stats(w.Corpus("jsonl/not-an-object.jsonl"))),
        new("jsonl/missing-target", w => Stats(w.Corpus("jsonl/missing-target.jsonl"))),
        new("jsonl/target-not-a-string", w => Stats(w.Corpus("jsonl/target-not-a-string.jsonl"))),
        new("jsonl/two-objects-on-a-line", w => Stats(w.Corpus("jsonl/two-objects-on-a-line.jsonl"))),
        new("jsonl/empty-stats", w => Stats(w.Corpus("jsonl/empty.jsonl"))),
        new("jsonl/blank-lines-only-stats", w => Stats(w.Corpus("jsonl/blank-lines-only.jsonl"))),
        new("jsonl/latin1", w => Stats(w.Write("latin1.jsonl", [.. "{\"context\": \"caf"u8, 0xE9, .. "\", \"target\": \"x\"}\n"u8]))),
        new("jsonl/utf16-with-bom", w => Stats(w.Write("utf16.jsonl", Encoding.Unicode.GetPreamble().Concat(Encoding.Unicode.GetBytes("{\"context\": \"a\", \"target\": \"b\"}\n")).ToArray()))),
        new("jsonl/line-over-the-cap", w => Stats(w.Write("long.jsonl", Encoding.ASCII.GetBytes(new string(' ', JsonlLines.MaxLineBytes + 1))))),
        new("jsonl/latin1-tokenize", w => ["tokenize", "--tokenizer", w.Inputs.Model, "--file", w.Write("latin1.jsonl", [.. "{\"text\": \"caf"u8, 0xE9, .. "\"}\n"u8])]),
        new("jsonl/latin1-build", w => ["data", "build", "--task", "fpb", "--source", w.Write("latin1.jsonl", [.. "{\"context\": \"caf"u8, 0xE9, .. "\", \"target\": \"x\"}\n"u8]), "--out", w.Out("train.jsonl")]),
        new("jsonl/exclude-is-the-source", w =>
        {
            string source = w.GoodData();
            return ["data", "build", "--task", "fpb", "--source", source, "--exclude", source, "--out", w.Out("train.jsonl")];
        }),
        new("jsonl/source-missing", w => ["data", "build", "--task", "fpb", "--source", w.In("missing.jsonl"), "--out", w.Out("train.jsonl")]),
        new("predictions/empty", w => Score(w.Corpus("jsonl/empty.jsonl"))),
        new("predictions/blank-lines-only", w => Score(w.Corpus("jsonl/blank-lines-only.jsonl"))),
        new("predictions/missing-output", w => Score(w.Corpus("predictions/missing-output.jsonl"))),
        new("predictions/unknown-label", w => Score(w.Corpus("predictions/unknown-label.jsonl"))),
        new("predictions/unknown-task", w => ["score", "--task", "no-such-task", "--predictions", w.Corpus("predictions/missing-output.jsonl")]),
        new("predictions/not-an-object", w => Score(w.Corpus("predictions/not-an-object.jsonl"))),
        new("predictions/latin1", w => Score(w.Write("p.jsonl", [.. "{\"target\": \"positive\", \"output\": \"caf"u8, 0xE9, .. "\"}\n"u8]))),

        // safetensors headers (SafetensorsHeader) and tensor roles (FloatTensors), read by a model load
        Safetensors("offset-over-2-63", 4),
        Safetensors("negative-shape", 0),
        Safetensors("overflowing-shape", 0),
        Safetensors("fractional-shape", 10),
        Safetensors("missing-dtype", 16),
        Safetensors("header-not-an-object", 16),
        Safetensors("tensor-not-an-object", 0),
        Safetensors("overlapping-ranges", 24),
        Safetensors("gap-between-ranges", 36),
        Safetensors("range-past-the-end", 8),
        Safetensors("malformed-json", 16),
        Safetensors("metadata-not-strings", 0),
        new("safetensors/header-not-utf8", w =>
        {
            string model = w.Model();
            byte[] header = [.. "{\"w"u8, 0xFF, .. "\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}"u8];
            File.WriteAllBytes(Path.Combine(model, "model.safetensors"), [.. BitConverter.GetBytes((long)header.Length), .. header, 0, 0, 0, 0]);
            return Generate(model);
        }),
        new("safetensors/header-length-past-the-end", w =>
        {
            string model = w.Model();
            File.WriteAllBytes(Path.Combine(model, "model.safetensors"), [.. BitConverter.GetBytes(1L << 40), .. "{}"u8]);
            return Generate(model);
        }),
        new("safetensors/truncated", w =>
        {
            string model = w.Model();
            string file = Path.Combine(model, "model.safetensors");
            byte[] bytes = File.ReadAllBytes(file);
            File.WriteAllBytes(file, bytes[..^100]);
            return Generate(model);
        }),
        new("safetensors/integer-weight", w =>
        {
            string model = w.Model();
            FuzzInputs.Retype(Path.Combine(model, "model.safetensors"), "model.layers.0.self_attn.k_proj.weight", ScalarType.Int32);
            return Generate(model);
        }),
        new("safetensors/bool-norm", w =>
        {
            string model = w.Model();
            FuzzInputs.Retype(Path.Combine(model, "model.safetensors"), "model.norm.weight", ScalarType.Bool);
            return Generate(model);
        }),

        // bitsandbytes-quantized folders (BitsAndBytesFormat): entries whose dtype does not fit their role
        new("bnb/absmax-stored-as-integers", w =>
        {
            string model = w.QuantizedModel();
            FuzzInputs.Retype(Path.Combine(model, "model.safetensors"), "model.layers.0.self_attn.q_proj.weight.absmax", ScalarType.Int32);
            return Generate(model);
        }),
        new("bnb/quant-state-stored-as-floats", w =>
        {
            string model = w.QuantizedModel();
            FuzzInputs.Retype(Path.Combine(model, "model.safetensors"), "model.layers.0.mlp.up_proj.weight.quant_state.bitsandbytes__nf4", ScalarType.Float32);
            return Generate(model);
        }),

        // GGUF (GgufFile), made field by field
        Gguf("not-gguf", () => "this is a text file named .gguf, not a model"u8.ToArray()),
        Gguf("truncated-header", () => new GgufBytes().Build(0)[..12]),
        Gguf("version-1", () => { var b = new GgufBytes().Tensor("a", F32, 0, 32).Build(128); b[4] = 1; return b; }),
        Gguf("tensor-count-past-the-end", () => new GgufBytes { TensorCountOverride = 1UL << 40 }.Build(0)),
        Gguf("shape-overflow", () => new GgufBytes().Tensor("token_embd.weight", F32, 0, 1UL << 40, 1UL << 40).Build(64)),
        Gguf("offset-plus-size-wraps", () => new GgufBytes().Tensor("token_embd.weight", F64, 32, (1UL << 60) - 1).Build(64)),
        Gguf("overlapping-tensors", () => new GgufBytes().Tensor("a", F32, 0, 32).Tensor("b", F32, 64, 32).Build(256)),
        Gguf("unknown-ggml-type", () => new GgufBytes().Tensor("a", 99, 0, 32).Build(128)),
        Gguf("tensor-past-the-end", () => new GgufBytes().Tensor("a", F32, 64, 32).Build(128)),
        Gguf("unaligned-offset", () => new GgufBytes().Tensor("a", F32, 4, 32).Build(256)),
        Gguf("tensor-name-with-a-newline", () => new GgufBytes().Tensor("blk.0.attn_q\n.weight", F32, 0, 32).Tensor("blk.0.attn_q\n.weight", F32, 128, 32).Build(256)),
        Gguf("key-with-a-newline", () => new GgufBytes().U32("general.align\nment", 1).U32("general.align\nment", 1).Build(0)),
        Gguf("bad-alignment", () => new GgufBytes().U32("general.alignment", 3).Tensor("a", F32, 0, 32).Build(128)),

        // model config.json
        ConfigCase("malformed"),
        ConfigCase("not-an-object"),
        ConfigCase("unsupported-architecture"),
        ConfigCase("missing-hidden-size"),
        ConfigCase("hidden-size-a-string"),
        ConfigCase("heads-do-not-divide"),
        ConfigCase("vocab-does-not-match-weights"),

        // adapter folders
        AdapterConfig("malformed"),
        AdapterConfig("not-an-object"),
        AdapterConfig("rank-zero"),
        AdapterConfig("rank-a-string"),
        AdapterConfig("no-target-modules"),
        AdapterConfig("not-lora"),
        AdapterConfig("rank-does-not-match-weights"),
        new("adapter/weights-missing", w =>
        {
            string adapter = w.Adapter();
            File.Delete(Path.Combine(adapter, "adapter_model.safetensors"));
            return Generate(w.Inputs.Model, "--adapter", adapter);
        }),
        new("adapter/weights-not-safetensors", w =>
        {
            string adapter = w.Adapter();
            File.WriteAllText(Path.Combine(adapter, "adapter_model.safetensors"), "not safetensors");
            return Generate(w.Inputs.Model, "--adapter", adapter);
        }),
        new("adapter/integer-lora-matrix", w =>
        {
            string adapter = w.Adapter();
            FuzzInputs.Retype(Path.Combine(adapter, "adapter_model.safetensors"), FuzzInputs.QA, ScalarType.Int8);
            return Generate(w.Inputs.Model, "--adapter", adapter);
        }),
        new("adapter/folder-missing", w => Generate(w.Inputs.Model, "--adapter", w.In("no-adapter"))),

        // YAML train config (TrainConfig)
        new("yaml/malformed", w => Train(w, w.Corpus("yaml/malformed.yaml"))),
        new("yaml/unknown-key", w => Train(w, w.Corpus("yaml/unknown-key.yaml"))),
        new("yaml/lr-not-a-number", w => Train(w, w.Corpus("yaml/lr-not-a-number.yaml"))),
        new("yaml/list-not-a-mapping", w => Train(w, w.Corpus("yaml/list-not-a-mapping.yaml"))),
        new("yaml/nested-value", w => Train(w, w.Corpus("yaml/nested-value.yaml"))),

        // Hub ids and revisions, refused before any request (HF_ENDPOINT points nowhere)
        new("hub/repo-dot", w => ["model", "fetch", "acme/.", "--out", w.Out("m")]),
        new("hub/repo-part-over-96", w => ["model", "fetch", "acme/" + new string('x', 97), "--out", w.Out("m")]),
        new("hub/repo-newline", w => ["model", "fetch", "acme/mo\ndel", "--out", w.Out("m")]),
        new("hub/revision-dot", w => ["data", "fetch", "FinGPT/fingpt-sentiment-train", "--revision", ".", "--out", w.Out("d")]),
        new("hub/revision-dotdot", w => ["model", "fetch", "acme/model", "--revision", "..", "--out", w.Out("m")]),
    ];
}
