using static TorchSharp.torch;

namespace FinQLoRA.Inference.Decoding;

/// <summary>One decode step over a batch's KV cache: feeds one token per row at the cache's next position (each row's
/// own, in the server's slot pool), appends its keys and values, advances a whole-model cache and returns fp32 logits
/// [B, 1, vocab]. <see cref="DecodeStep.Choose"/> picks the implementation.</summary>
public interface IDecodeStep
{
    /// <param name="ids">[B, 1] int64</param>
    /// <param name="positions">[B, 1] positions of rows at their own lengths (or left-padded), or null over a whole-model cache without padding</param>
    /// <param name="mask">[B, 1, 1, past + 1] additive mask of the rows, or null with <paramref name="positions"/></param>
    Tensor Forward(Tensor ids, Tensor? positions = null, Tensor? mask = null);
}
