namespace FinQLoRA.Recipes;

/// <param name="MergedProjections">projections that carried the adapter</param>
/// <param name="DequantizedBase">true when the base was 4/8-bit and the merge was done onto its dequantized weights</param>
/// <param name="Bytes">size of the written weights (model.safetensors or the .gguf file)</param>
public sealed record AdapterMergeResult(string OutPath, string Format, int MergedProjections, bool DequantizedBase, long Bytes);
