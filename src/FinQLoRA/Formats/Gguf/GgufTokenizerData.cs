namespace FinQLoRA.Formats.Gguf;

/// <summary>
/// The tokenizer a GGUF file embeds (<c>tokenizer.ggml.*</c>), as plain data. <see cref="Model"/> is "llama"
/// (SentencePiece-style BPE driven by <see cref="Scores"/>, with <c>&lt;0xXX&gt;</c> byte tokens) or "gpt2" (byte-level
/// BPE driven by <see cref="Merges"/>, pre-tokenizer named by <see cref="Pre"/>). Token ids are list indices.
/// </summary>
public sealed record GgufTokenizerData
{
    public required string Model { get; init; }
    public string? Pre { get; init; }
    public required IReadOnlyList<string> Tokens { get; init; }
    public IReadOnlyList<float>? Scores { get; init; }
    public IReadOnlyList<int>? TokenTypes { get; init; }
    public IReadOnlyList<string>? Merges { get; init; }
    public int? BosId { get; init; }
    public int? EosId { get; init; }
    public int? UnkId { get; init; }
    public int? PadId { get; init; }
    /// <summary>Null when the file does not say; llama.cpp then adds BOS for "llama" and for the Llama 3 pre-tokenizer.</summary>
    public bool? AddBos { get; init; }
    public bool? AddEos { get; init; }
    public string? ChatTemplate { get; init; }

    public GgufTokenType TypeOf(int id) => TokenTypes is { } t && id < t.Count ? (GgufTokenType)t[id] : GgufTokenType.Normal;

    /// <summary>The embedded tokenizer, or null when the file has none (no <c>tokenizer.ggml.model</c>).</summary>
    public static GgufTokenizerData? FromGguf(GgufFile file)
    {
        string? model = file.GetString("tokenizer.ggml.model");
        if (model == null) return null;
        var tokens = file.GetArray<string>("tokenizer.ggml.tokens")
            ?? throw new UserInputException($"{file.Path}: 'tokenizer.ggml.model' is set but 'tokenizer.ggml.tokens' is missing");
        float[]? scores = file.GetArray<float>("tokenizer.ggml.scores");
        int[]? types = file.GetArray<int>("tokenizer.ggml.token_type");
        if (scores != null && scores.Length != tokens.Length)
            throw new UserInputException($"{file.Path}: 'tokenizer.ggml.scores' has {scores.Length} entries for {tokens.Length} tokens");
        if (types != null && types.Length != tokens.Length)
            throw new UserInputException($"{file.Path}: 'tokenizer.ggml.token_type' has {types.Length} entries for {tokens.Length} tokens");

        int? Id(string key)
        {
            long? v = file.GetInteger(key);
            if (v is null or 4294967295 or < 0) return null; // llama.cpp writes u32 -1 for "none"
            if (v >= tokens.Length)
                throw new UserInputException($"{file.Path}: '{key}' is {v}, outside the vocabulary of {tokens.Length} tokens");
            return (int)v;
        }

        return new GgufTokenizerData
        {
            Model = model,
            Pre = file.GetString("tokenizer.ggml.pre"),
            Tokens = tokens,
            Scores = scores,
            TokenTypes = types,
            Merges = file.GetArray<string>("tokenizer.ggml.merges"),
            BosId = Id("tokenizer.ggml.bos_token_id"),
            EosId = Id("tokenizer.ggml.eos_token_id"),
            UnkId = Id("tokenizer.ggml.unknown_token_id"),
            PadId = Id("tokenizer.ggml.padding_token_id"),
            AddBos = file.GetBool("tokenizer.ggml.add_bos_token"),
            AddEos = file.GetBool("tokenizer.ggml.add_eos_token"),
            ChatTemplate = file.GetString("tokenizer.chat_template"),
        };
    }

    /// <summary>Adds the <c>tokenizer.*</c> keys, in the order llama.cpp's converter writes them.</summary>
    public void WriteTo(GgufWriter writer)
    {
        writer.Add("tokenizer.ggml.model", Model);
        if (Pre != null) writer.Add("tokenizer.ggml.pre", Pre);
        writer.Add("tokenizer.ggml.tokens", Tokens.ToArray());
        if (Scores != null) writer.Add("tokenizer.ggml.scores", Scores.ToArray());
        if (TokenTypes != null) writer.Add("tokenizer.ggml.token_type", TokenTypes.ToArray());
        if (Merges != null) writer.Add("tokenizer.ggml.merges", Merges.ToArray());
        if (BosId is int bos) writer.Add("tokenizer.ggml.bos_token_id", (uint)bos);
        if (EosId is int eos) writer.Add("tokenizer.ggml.eos_token_id", (uint)eos);
        if (UnkId is int unk) writer.Add("tokenizer.ggml.unknown_token_id", (uint)unk);
        if (PadId is int pad) writer.Add("tokenizer.ggml.padding_token_id", (uint)pad);
        if (AddBos is bool addBos) writer.Add("tokenizer.ggml.add_bos_token", addBos);
        if (AddEos is bool addEos) writer.Add("tokenizer.ggml.add_eos_token", addEos);
        if (ChatTemplate != null) writer.Add("tokenizer.chat_template", ChatTemplate);
    }
}
