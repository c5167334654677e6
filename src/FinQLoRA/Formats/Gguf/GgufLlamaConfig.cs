using FinQLoRA.Models;

namespace FinQLoRA.Formats.Gguf;

/// <summary>
/// <see cref="ModelConfig"/> ↔ the <c>llama.*</c> metadata of a GGUF file. Llama 3.1-style RoPE scaling has no
/// metadata keys in llama.cpp: its converter stores the per-frequency divisors as a <c>rope_freqs.weight</c> tensor,
/// which we write from, and read back into, <see cref="RopeScaling"/>.
/// </summary>
public static class GgufLlamaConfig
{
    public const string RopeFreqsTensor = "rope_freqs.weight";

    public static ModelConfig Read(GgufFile file, GgufTokenizerData? tokenizer)
    {
        string arch = file.GetString("general.architecture")
            ?? throw new UserInputException($"{file.Path}: 'general.architecture' is missing; this is not a model GGUF");
        if (arch != "llama")
            throw new UserInputException($"{file.Path}: architecture '{arch}' is not supported; FinQLoRA runs Llama-family models (general.architecture = llama)");
        if (file.GetString("general.type") is { } kind && kind != "model")
            throw new UserInputException($"{file.Path}: general.type is '{kind}', not a model; pass a base model GGUF");

        int Req(string key) => file.GetInteger($"llama.{key}") is long v and > 0 and <= int.MaxValue
            ? (int)v
            : throw new UserInputException($"{file.Path}: 'llama.{key}' must be a positive integer (found {file.Get($"llama.{key}")?.ToString() ?? "nothing"})");
        int? Opt(string key) => file.ContainsKey($"llama.{key}") ? Req(key) : null;

        int hidden = Req("embedding_length");
        int heads = Req("attention.head_count");
        int kvHeads = Opt("attention.head_count_kv") ?? heads;
        int headDim = Opt("attention.key_length") ?? hidden / heads;
        int ropeDim = Opt("rope.dimension_count") ?? headDim;
        if (ropeDim != headDim)
            throw new UserInputException($"{file.Path}: 'llama.rope.dimension_count' is {ropeDim} but the head dimension is {headDim}; partial rotary embeddings are not supported");
        if (heads % kvHeads != 0)
            throw new UserInputException($"{file.Path}: head_count {heads} is not a multiple of head_count_kv {kvHeads}");

        int vocab = Opt("vocab_size") ?? tokenizer?.Tokens.Count
            ?? (file.Contains(ModelLayout.GgufEmbeddingsName) ? (int)file.Tensor(ModelLayout.GgufEmbeddingsName).Ne[^1] : 0);
        if (vocab <= 0) throw new UserInputException($"{file.Path}: cannot tell the vocabulary size (no llama.vocab_size, tokens or {ModelLayout.GgufEmbeddingsName})");
        double theta = Shortest(file.GetFloat("llama.rope.freq_base") ?? 10000.0);

        string dtype = TorchDtypeNames.Name(file.Contains(ModelLayout.GgufEmbeddingsName) ? file.Tensor(ModelLayout.GgufEmbeddingsName).Type switch
        {
            GgmlType.F16 => TorchSharp.torch.ScalarType.Float16,
            GgmlType.BF16 => TorchSharp.torch.ScalarType.BFloat16,
            _ => TorchSharp.torch.ScalarType.Float32,
        } : TorchSharp.torch.ScalarType.Float32);

        return new ModelConfig
        {
            HiddenSize = hidden,
            IntermediateSize = Req("feed_forward_length"),
            NumLayers = Req("block_count"),
            NumHeads = heads,
            NumKvHeads = kvHeads,
            HeadDim = headDim,
            VocabSize = vocab,
            MaxPositionEmbeddings = Opt("context_length") ?? 2048,
            RmsNormEps = Shortest(file.GetFloat("llama.attention.layer_norm_rms_epsilon") ?? 1e-5),
            RopeTheta = theta,
            RopeScaling = ReadRopeScaling(file, headDim, theta),
            TieWordEmbeddings = !file.Contains(ModelLayout.GgufHeadName),
            BosTokenId = tokenizer?.BosId,
            EosTokenIds = tokenizer?.EosId is int eos ? [eos] : [],
            PadTokenId = tokenizer?.PadId,
            TorchDtype = dtype,
        };
    }

    /// <summary>GGUF stores floats as f32: 1e-5 comes back as 9.99999974e-6. Print the shortest f32 form, so that
    /// config.json says 1e-05 again.</summary>
    private static double Shortest(double v) => double.Parse(((float)v).ToString("R", System.Globalization.CultureInfo.InvariantCulture), System.Globalization.CultureInfo.InvariantCulture);

    private static unsafe RopeScaling? ReadRopeScaling(GgufFile file, int headDim, double theta)
    {
        string type = file.GetString("llama.rope.scaling.type") ?? "none";
        if (type != "none")
            throw new UserInputException($"{file.Path}: llama.rope.scaling.type '{type}' is not supported (Llama 3 scaling via rope_freqs.weight, or none)");
        if (!file.Contains(RopeFreqsTensor)) return null;
        var info = file.Tensor(RopeFreqsTensor);
        if (info.Type != GgmlType.F32 || info.ElementCount != headDim / 2)
            throw new UserInputException($"{file.Path}: tensor '{RopeFreqsTensor}' should be F32 with {headDim / 2} values, found {info.Type} ne=[{string.Join(", ", info.Ne)}]");
        var stored = new ReadOnlySpan<float>(file.Data(info), headDim / 2).ToArray();
        int original = (int)(file.GetInteger("llama.rope.scaling.original_context_length") ?? 8192);
        // Llama 3.1 and 3.2 use low 1, high 4 with factors 8 and 32; the factor is the largest divisor.
        var guess = new RopeScaling("llama3", Shortest(stored.Max()), 1.0, 4.0, original);
        var expected = RopeFactors(guess, headDim, theta);
        for (int i = 0; i < stored.Length; i++)
            if (Math.Abs(expected[i] - stored[i]) > 1e-4 * Math.Abs(expected[i]))
                throw new UserInputException($"{file.Path}: '{RopeFreqsTensor}' does not match Llama 3 RoPE scaling (factor {guess.Factor}, low 1, high 4, original {original}) at index {i}: {stored[i]} vs {expected[i]}");
        return guess;
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

    /// <summary>Adds the <c>general.architecture</c> and <c>llama.*</c> keys.</summary>
    public static void Write(ModelConfig c, GgufWriter w)
    {
        if (c.Family.GgufArchitecture != "llama" || c.QkvBias || c.OutputBias || c.MlpBias || c.SlidingWindow is not null)
            throw new UserInputException($"a {c.Family.HfArchitecture} model{(c.SlidingWindow is not null ? " with a sliding window" : "")} cannot be written as GGUF yet; only plain Llama models convert");
        w.Add("llama.vocab_size", (uint)c.VocabSize);
        w.Add("llama.context_length", (uint)c.MaxPositionEmbeddings);
        w.Add("llama.embedding_length", (uint)c.HiddenSize);
        w.Add("llama.block_count", (uint)c.NumLayers);
        w.Add("llama.feed_forward_length", (uint)c.IntermediateSize);
        w.Add("llama.rope.dimension_count", (uint)c.HeadDim);
        w.Add("llama.attention.head_count", (uint)c.NumHeads);
        w.Add("llama.attention.head_count_kv", (uint)c.NumKvHeads);
        if (c.HeadDim * c.NumHeads != c.HiddenSize)
        {
            w.Add("llama.attention.key_length", (uint)c.HeadDim);
            w.Add("llama.attention.value_length", (uint)c.HeadDim);
        }
        w.Add("llama.attention.layer_norm_rms_epsilon", (float)c.RmsNormEps);
        w.Add("llama.rope.freq_base", (float)c.RopeTheta);
    }
}
