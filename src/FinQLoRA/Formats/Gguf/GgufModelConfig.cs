using System.Globalization;
using System.Text.Json.Nodes;
using FinQLoRA.Models;
using FinQLoRA.Models.Families;

namespace FinQLoRA.Formats.Gguf;

/// <summary>
/// <see cref="ModelConfig"/> ↔ the <c>{arch}.*</c> metadata of a GGUF file, for every architecture of
/// <see cref="GgufArchitectures"/>, with the keys llama.cpp's converter writes and its loader reads. What has no key
/// travels as a tensor, as llama.cpp's converter does it: Llama 3.1-style RoPE scaling as the per-frequency divisors
/// <c>rope_freqs.weight</c>, LongRoPE as <c>rope_factors_long/short.weight</c>. Reading builds the family's own
/// config.json from the metadata and parses it with <see cref="ModelConfig.FromJson"/>, so the family's table sets its
/// switches exactly as for a Hugging Face checkpoint.
/// <para>Writing refuses, by the config key, what llama.cpp's architecture would drop or run differently: biases its
/// loader does not create, windows on other layers than its pattern, missing soft-caps where it applies defaults, a
/// query scale other than its rule, RoPE scalings it cannot express. One exception is kept on purpose: Mistral's
/// window. llama.cpp's <c>llama</c> architecture has no window (its converter drops Mistral's <c>sliding_window</c>
/// and the model runs with full attention, the window's result only for prompts inside the window); we write it in
/// <c>llama.attention.sliding_window</c>, which llama.cpp ignores, so that GGUF → HF gives the Mistral back. A
/// llama-architecture file without the key comes back as Llama.</para>
/// </summary>
public static class GgufModelConfig
{
    public const string RopeFreqsTensor = "rope_freqs.weight";
    public const string RopeFactorsLongTensor = "rope_factors_long.weight";
    public const string RopeFactorsShortTensor = "rope_factors_short.weight";

    /// <summary>Whether a GGUF tensor holds configuration (RoPE factors), not a weight.</summary>
    public static bool IsConfigTensor(string name) => name is RopeFreqsTensor or RopeFactorsLongTensor or RopeFactorsShortTensor;

    private static string Supported => string.Join(", ", GgufArchitectures.All.Select(a => a.Name));

    public static ModelConfig Read(GgufFile file, GgufTokenizerData? tokenizer)
    {
        string name = file.GetString("general.architecture")
            ?? throw new UserInputException($"{file.Path}: 'general.architecture' is missing; this is not a model GGUF");
        var arch = GgufArchitectures.ByName(name)
            ?? throw new UserInputException($"{file.Path}: architecture '{name}' is not supported; FinQLoRA reads the GGUF architectures {Supported}");
        if (file.GetString("general.type") is { } kind && kind != "model")
            throw new UserInputException($"{file.Path}: general.type is '{kind}', not a model; pass a base model GGUF");

        int Req(string key) => file.GetInteger(arch.Key(key)) is long v and > 0 and <= int.MaxValue
            ? (int)v
            : throw new UserInputException($"{file.Path}: '{arch.Key(key)}' must be a positive integer (found {file.Get(arch.Key(key))?.ToString() ?? "nothing"})");
        int? Opt(string key) => file.ContainsKey(arch.Key(key)) ? Req(key) : null;
        double? Float(string key) => file.GetFloat(arch.Key(key)) is double d ? Shortest(d) : null;

        int hidden = Req("embedding_length");
        int heads = Req("attention.head_count");
        int kvHeads = Opt("attention.head_count_kv") ?? heads;
        int headDim = Opt("attention.key_length") ?? hidden / heads;
        if (Opt("attention.value_length") is int valueDim && valueDim != headDim)
            throw new UserInputException($"{file.Path}: '{arch.Key("attention.value_length")}' {valueDim} differs from the key length {headDim}; FinQLoRA's attention has one head dimension");
        int ropeDim = Opt("rope.dimension_count") ?? headDim;
        if (ropeDim > headDim || (ropeDim != headDim && !arch.PartialRotary))
            throw new UserInputException($"{file.Path}: '{arch.Key("rope.dimension_count")}' is {ropeDim} but the head dimension is {headDim}; {arch} rotates whole heads");
        int layers = Req("block_count");

        int vocab = Opt("vocab_size") ?? tokenizer?.Tokens.Count
            ?? (file.Contains(ModelLayout.GgufEmbeddingsName) ? (int)file.Tensor(ModelLayout.GgufEmbeddingsName).Ne[^1] : 0);
        if (vocab <= 0) throw new UserInputException($"{file.Path}: cannot tell the vocabulary size (no {arch.Key("vocab_size")}, tokens or {ModelLayout.GgufEmbeddingsName})");
        double theta = Float("rope.freq_base") ?? 10000.0;

        int? window = arch.WindowKey ? Opt("attention.sliding_window") ?? arch.DefaultWindow : null;
        if (file.Get(arch.Key("attention.sliding_window_pattern")) is { } pattern
            && (arch.WindowPeriod is not int period || file.GetInteger(arch.Key("attention.sliding_window_pattern")) != period))
            throw new UserInputException($"{file.Path}: '{arch.Key("attention.sliding_window_pattern")}' is {pattern}; FinQLoRA reads {arch} with {(arch.WindowPeriod is int p ? $"its pattern {p}" : "no window pattern")}");
        var family = window is not null && arch.WindowedFamily is { } windowed ? windowed : ModelFamilies.ByGgufArchitecture(arch.Name)!;

        var torchDtype = file.Contains(ModelLayout.GgufEmbeddingsName) ? file.Tensor(ModelLayout.GgufEmbeddingsName).Type switch
        {
            GgmlType.F16 => TorchSharp.torch.ScalarType.Float16,
            GgmlType.BF16 => TorchSharp.torch.ScalarType.BFloat16,
            _ => TorchSharp.torch.ScalarType.Float32,
        } : TorchSharp.torch.ScalarType.Float32;

        bool HasBias(ProjectionKind k) => file.Contains(GgufBiasName(0, k));
        var json = new JsonObject
        {
            ["architectures"] = new JsonArray(family.HfArchitecture),
            ["model_type"] = family.ModelType,
            ["hidden_size"] = hidden,
            ["intermediate_size"] = Req("feed_forward_length"),
            ["num_hidden_layers"] = layers,
            ["num_attention_heads"] = heads,
            ["num_key_value_heads"] = kvHeads,
            ["head_dim"] = headDim,
            ["vocab_size"] = vocab,
            ["max_position_embeddings"] = Opt("context_length") ?? 2048,
            ["rms_norm_eps"] = Float("attention.layer_norm_rms_epsilon") ?? 1e-5,
            ["rope_theta"] = theta,
            ["tie_word_embeddings"] = !file.Contains(ModelLayout.GgufHeadName),
            ["attention_bias"] = HasBias(ProjectionKind.Q) || HasBias(ProjectionKind.Qkv),
            ["mlp_bias"] = HasBias(ProjectionKind.Down),
            ["torch_dtype"] = TorchDtypeNames.Name(torchDtype),
            ["sliding_window"] = window,
        };
        if (ropeDim != headDim) json["partial_rotary_factor"] = (double)ropeDim / headDim;
        if (arch.Softcaps is var (attentionCap, finalCap))
        {
            json["attn_logit_softcapping"] = Float("attn_logit_softcapping") ?? attentionCap;
            json["final_logit_softcapping"] = Float("final_logit_softcapping") ?? finalCap;
        }
        if (arch.QueryPreAttnScalar is { } rule)
            json["query_pre_attn_scalar"] = rule(new ModelConfig { HiddenSize = hidden, NumHeads = heads, HeadDim = headDim, NumLayers = layers });
        if (arch.LocalRopeBase is double localBase) json["rope_local_base_freq"] = Float("rope.freq_base_swa") ?? localBase;
        json["rope_scaling"] = ReadRopeScaling(file, arch, json, headDim, ropeDim, theta);
        if (tokenizer?.BosId is int bos) json["bos_token_id"] = bos;
        if (tokenizer?.EosId is int eos) json["eos_token_id"] = eos;
        if (tokenizer?.PadId is int pad) json["pad_token_id"] = pad;

        // through text, as a config.json file is read (numbers then parse as whatever type the family asks for)
        var config = ModelConfig.FromJson((JsonObject)JsonNode.Parse(json.ToJsonString())!, file.Path);
        if (config.RotaryDim != ropeDim)
            throw new UserInputException($"{file.Path}: '{arch.Key("rope.dimension_count")}' {ropeDim} is not a share of head dimension {headDim} FinQLoRA can express");
        return config;
    }

    /// <summary>llama.cpp's name of a projection's bias: <c>blk.{i}.attn_q.bias</c>.</summary>
    public static string GgufBiasName(int layer, ProjectionKind kind) => ModelLayout.GgufWeightName(layer, kind)[..^"weight".Length] + "bias";

    /// <summary>GGUF stores floats as f32: 1e-5 comes back as 9.99999974e-6. Print the shortest f32 form, so that
    /// config.json says 1e-05 again.</summary>
    private static double Shortest(double v) => double.Parse(((float)v).ToString("R", CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);

    private static unsafe float[] FloatTensor(GgufFile file, string name, int count)
    {
        var info = file.Tensor(name);
        if (info.Type != GgmlType.F32 || info.ElementCount != count)
            throw new UserInputException($"{file.Path}: tensor '{name}' should be F32 with {count} values, found {info.Type} ne=[{string.Join(", ", info.Ne)}]");
        return new ReadOnlySpan<float>(file.Data(info), count).ToArray();
    }

    private static JsonObject? ReadRopeScaling(GgufFile file, GgufArchitecture arch, JsonObject root, int headDim, int ropeDim, double theta)
    {
        string type = file.GetString(arch.Key("rope.scaling.type")) ?? "none";
        int? original = file.GetInteger(arch.Key("rope.scaling.original_context_length")) is long o ? (int)o : null;
        double? factor = file.GetFloat(arch.Key("rope.scaling.factor")) is double f ? Shortest(f) : null;
        JsonObject? scaling;
        if (file.Contains(RopeFreqsTensor)) scaling = Llama3Scaling(file, headDim, theta, original ?? 8192);
        else if (file.Contains(RopeFactorsLongTensor) || file.Contains(RopeFactorsShortTensor))
        {
            if (original is not int orig)
                throw new UserInputException($"{file.Path}: LongRoPE factors need '{arch.Key("rope.scaling.original_context_length")}'");
            root["original_max_position_embeddings"] = orig;
            JsonArray Factors(string tensor) => new(FloatTensor(file, tensor, ropeDim / 2).Select(v => (JsonNode)Shortest(v)).ToArray());
            scaling = new JsonObject
            {
                ["rope_type"] = "longrope",
                ["short_factor"] = Factors(RopeFactorsShortTensor),
                ["long_factor"] = Factors(RopeFactorsLongTensor),
            };
            // the attention factor is stored always; config.json states it only when it is not LongRoPE's own rule
            var rule = new RopeScaling("longrope", (double)(root["max_position_embeddings"]!.GetValue<int>()) / orig, 0, 0, orig);
            if (file.GetFloat(arch.Key("rope.scaling.attn_factor")) is double attn && Math.Abs(attn - rule.CosSinScale) > 1e-6)
                scaling["attention_factor"] = Shortest(attn);
        }
        else scaling = type switch
        {
            "none" => null,
            "linear" => new JsonObject { ["rope_type"] = "linear", ["factor"] = factor ?? throw MissingKey(file, arch, "rope.scaling.factor", type) },
            "yarn" => new JsonObject
            {
                ["rope_type"] = "yarn",
                ["factor"] = factor ?? throw MissingKey(file, arch, "rope.scaling.factor", type),
                ["original_max_position_embeddings"] = original ?? throw MissingKey(file, arch, "rope.scaling.original_context_length", type),
            },
            _ => throw new UserInputException($"{file.Path}: '{arch.Key("rope.scaling.type")}' '{type}' is not supported (linear, yarn, none)"),
        };
        string? read = scaling?["rope_type"]?.GetValue<string>();
        if (read != null && !arch.RopeScalings.Contains(read))
            throw new UserInputException($"{file.Path}: {read} RoPE scaling is not one llama.cpp's {arch} architecture runs ({string.Join(", ", arch.RopeScalings)})");
        return scaling;
    }

    private static UserInputException MissingKey(GgufFile file, GgufArchitecture arch, string key, string type) =>
        new($"{file.Path}: {type} RoPE scaling needs '{arch.Key(key)}'");

    private static JsonObject Llama3Scaling(GgufFile file, int headDim, double theta, int original)
    {
        var stored = FloatTensor(file, RopeFreqsTensor, headDim / 2);
        // Llama 3.1 and 3.2 use low 1, high 4 with factors 8 and 32; the factor is the largest divisor.
        var guess = new RopeScaling("llama3", Shortest(stored.Max()), 1.0, 4.0, original);
        var expected = RopeFactors(guess, headDim, theta);
        for (int i = 0; i < stored.Length; i++)
            if (Math.Abs(expected[i] - stored[i]) > 1e-4 * Math.Abs(expected[i]))
                throw new UserInputException($"{file.Path}: '{RopeFreqsTensor}' does not match Llama 3 RoPE scaling (factor {guess.Factor}, low 1, high 4, original {original}) at index {i}: {stored[i]} vs {expected[i]}");
        return guess.ToJson();
    }

    /// <summary>llama.cpp's <c>rope_freqs</c>: for each frequency, the divisor that turns the plain inverse frequency
    /// into the Llama 3 scaled one (what convert_hf_to_gguf.py computes).</summary>
    public static float[] RopeFactors(RopeScaling scaling, int headDim, double theta)
    {
        var invFreq = new double[headDim / 2];
        for (int i = 0; i < invFreq.Length; i++) invFreq[i] = 1.0 / Math.Pow(theta, 2.0 * i / headDim);
        var scaled = scaling.Apply(invFreq, theta, headDim);
        return invFreq.Select((f, i) => (float)(f / scaled[i])).ToArray();
    }

    /// <summary>The tensors that carry a config's RoPE scaling (none for linear and YaRN, which are keys).</summary>
    public static IEnumerable<(string Name, float[] Values)> ConfigTensors(ModelConfig c)
    {
        switch (c.RopeScaling?.Type)
        {
            case "llama3":
                yield return (RopeFreqsTensor, RopeFactors(c.RopeScaling, c.HeadDim, c.RopeTheta));
                break;
            case "longrope":
                yield return (RopeFactorsLongTensor, c.RopeScaling.LongFactor.Select(v => (float)v).ToArray());
                yield return (RopeFactorsShortTensor, c.RopeScaling.ShortFactor.Select(v => (float)v).ToArray());
                break;
        }
    }

    /// <summary>Adds the <c>general.architecture</c> and <c>{arch}.*</c> keys, after refusing what llama.cpp's
    /// architecture would not run as the config says.</summary>
    public static void Write(ModelConfig c, GgufWriter w)
    {
        var arch = GgufArchitectures.Of(c.Family);
        Check(c, arch);
        w.Add("general.architecture", arch.Name);
        void U(string key, int value) => w.Add(arch.Key(key), (uint)value);
        void F(string key, double value) => w.Add(arch.Key(key), (float)value);
        U("vocab_size", c.VocabSize);
        U("context_length", c.MaxPositionEmbeddings);
        U("embedding_length", c.HiddenSize);
        U("block_count", c.NumLayers);
        U("feed_forward_length", c.IntermediateSize);
        U("rope.dimension_count", c.RotaryDim);
        U("attention.head_count", c.NumHeads);
        U("attention.head_count_kv", c.NumKvHeads);
        if (c.HeadDim * c.NumHeads != c.HiddenSize)
        {
            U("attention.key_length", c.HeadDim);
            U("attention.value_length", c.HeadDim);
        }
        F("attention.layer_norm_rms_epsilon", c.RmsNormEps);
        F("rope.freq_base", c.RopeTheta);
        if (c.SlidingWindow is int window) U("attention.sliding_window", window);
        if (arch.Softcaps is not null)
        {
            F("attn_logit_softcapping", c.AttentionSoftcap!.Value);
            F("final_logit_softcapping", c.FinalSoftcap!.Value);
        }
        if (c.LocalRopeTheta is double local && local != arch.LocalRopeBase) F("rope.freq_base_swa", local);
        switch (c.RopeScaling)
        {
            case { Type: "linear" } s:
                w.Add(arch.Key("rope.scaling.type"), "linear");
                F("rope.scaling.factor", s.Factor);
                break;
            case { Type: "yarn" } s:
                w.Add(arch.Key("rope.scaling.type"), "yarn");
                F("rope.scaling.factor", s.Factor);
                U("rope.scaling.original_context_length", s.OriginalMaxPositionEmbeddings);
                break;
            case { Type: "longrope" } s:
                F("rope.scaling.attn_factor", s.CosSinScale);
                U("rope.scaling.original_context_length", s.OriginalMaxPositionEmbeddings);
                break;
            case { Type: "llama3" } s: // not read by llama.cpp (rope_freqs carries the scaling); kept for GGUF → HF
                U("rope.scaling.original_context_length", s.OriginalMaxPositionEmbeddings);
                break;
        }
    }

    private static void Check(ModelConfig c, GgufArchitecture arch)
    {
        string model = $"a {c.Family.HfArchitecture} model";
        string refuse = $"cannot be written as GGUF: llama.cpp's {arch} architecture";
        foreach (var kind in c.Family.Projections)
            if (ModelLayout.HasBias(c, kind) && !arch.Biases.Contains(kind))
                throw new UserInputException($"{model} with a bias on {ModelLayout.ModuleName(kind)} ({(ModelLayout.IsAttention(kind) ? "attention_bias" : "mlp_bias")} true) {refuse} loads no {GgufBiasName(0, kind).Replace("blk.0.", "blk.N.", StringComparison.Ordinal)}; merge the biases elsewhere or keep the HF checkpoint");

        if (c.SlidingWindow is int window)
        {
            if (!arch.WindowKey)
                throw new UserInputException($"{model} with sliding_window {window} (use_sliding_window true) {refuse} has no sliding window; llama.cpp would attend to every position");
            var ours = Enumerable.Range(0, c.NumLayers).Select(i => c.WindowOf(i) is not null).ToArray();
            var theirs = Enumerable.Range(0, c.NumLayers).Select(i => arch.WindowPeriod is null || arch.Windowed(i)).ToArray();
            if (!ours.SequenceEqual(theirs))
                throw new UserInputException($"{model}: its windowed layers ({Layers(ours)}, from layer_types or the window pattern) {refuse} windows layers {Layers(theirs)}");
        }
        else if (arch.DefaultWindow is int fallback)
            throw new UserInputException($"{model} with sliding_window null {refuse} windows every other layer anyway ({fallback} when unset); set sliding_window");

        if (arch.Softcaps is null && (c.AttentionSoftcap is not null || c.FinalSoftcap is not null))
            throw new UserInputException($"{model} with attn_logit_softcapping/final_logit_softcapping {refuse} has no soft-caps; set them to null");
        if (arch.Softcaps is not null && (c.AttentionSoftcap is null || c.FinalSoftcap is null))
            throw new UserInputException($"{model} without attn_logit_softcapping or final_logit_softcapping {refuse} soft-caps always (50 and 30 when unset); set both");

        double expected = arch.QueryPreAttnScalar?.Invoke(c) ?? c.HeadDim;
        if (Math.Abs(c.QueryScale - 1.0 / Math.Sqrt(expected)) > 1e-12)
            throw new UserInputException($"{model} with query_pre_attn_scalar {c.QueryPreAttnScalar} {refuse} scales queries by 1/√{expected} (it reads no key for the scale)");

        if (c.LocalRopeTheta is not null && arch.LocalRopeBase is null)
            throw new UserInputException($"{model} with rope_local_base_freq {refuse} has no local RoPE base");

        if (c.RotaryDim != c.HeadDim && !arch.PartialRotary)
            throw new UserInputException($"{model} with partial_rotary_factor {c.PartialRotaryFactor} {refuse} rotates whole heads");

        if (c.RopeScaling is { } s)
        {
            if (!arch.RopeScalings.Contains(s.Type))
                throw new UserInputException($"{model} with rope_scaling type {s.Type} {refuse} runs {string.Join(", ", arch.RopeScalings)}");
            if (s.Type == "yarn" && (s.BetaFast != 32 || s.BetaSlow != 1 || (s.AttentionFactor is double a && Math.Abs(a - (0.1 * Math.Log(s.Factor) + 1)) > 1e-9)))
                throw new UserInputException($"{model} with YaRN beta_fast {s.BetaFast}, beta_slow {s.BetaSlow}, attention_factor {s.AttentionFactor?.ToString(CultureInfo.InvariantCulture) ?? "default"} cannot be written as GGUF: FinQLoRA writes YaRN with llama.cpp's defaults only (32, 1, 0.1·ln(factor) + 1)");
        }
    }

    private static string Layers(bool[] windowed) => windowed.All(x => !x) ? "none" : string.Join(",", windowed.Select((x, i) => (x, i)).Where(p => p.x).Select(p => p.i));
}
