namespace FinQLoRA.Formats.Gguf;

/// <summary>Values of <c>tokenizer.ggml.token_type</c> (llama.cpp <c>llama_token_type</c>).</summary>
public enum GgufTokenType
{
    Normal = 1,
    Unknown = 2,
    Control = 3,
    UserDefined = 4,
    Unused = 5,
    Byte = 6,
}
