namespace FinQLoRA.Formats.Gguf;

/// <summary>ggml tensor types (ggml.h <c>ggml_type</c>) whose block layout we know. Only F32, F16, BF16 and Q8_0
/// can be read into tensors; the others are listed so that such files still parse and the error names the type.</summary>
public enum GgmlType : uint
{
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    I8 = 24,
    I16 = 25,
    I32 = 26,
    I64 = 27,
    F64 = 28,
    BF16 = 30,
}
