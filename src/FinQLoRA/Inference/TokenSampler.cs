using static TorchSharp.torch;

namespace FinQLoRA.Inference;

/// <summary>Picks the next token from fp32 logits [B, vocab]: argmax, or temperature / top-k / top-p sampling with a
/// seeded generator so that a seed reproduces a run.</summary>
public sealed class TokenSampler : IDisposable
{
    private readonly ISamplingSettings _options;
    private readonly Generator? _generator;
    private bool _firstStep = true;

    public TokenSampler(ISamplingSettings options, Device device)
    {
        _options = options;
        if (!options.Greedy) _generator = new Generator((ulong)options.Seed, device);
    }

    /// <returns>[B] int64 ids</returns>
    public Tensor Next(Tensor logits)
    {
        using var scope = NewDisposeScope();
        // A row with no finite logit means broken weights or config (NaN everywhere, argmax 0 forever): say so
        // instead of returning token 0 as if it were text. Broken weights show at the first step already, so only
        // that one pays the extra host round trip.
        if (_firstStep && !isfinite(logits).any(-1).all().item<bool>())
            throw new UserInputException("the model produced NaN/inf logits for every token: its weights or config are broken (check rms_norm_eps, rope_theta and the weight files, or the adapter)");
        _firstStep = false;
        if (_options.Greedy) return logits.argmax(-1).MoveToOuterDisposeScope();
        var scaled = logits / _options.Temperature;
        if (_options.TopK > 0 && _options.TopK < scaled.shape[^1])
        {
            var kth = scaled.topk(_options.TopK, dim: -1).values.narrow(-1, _options.TopK - 1, 1);
            scaled = scaled.masked_fill(scaled.lt(kth), float.NegativeInfinity);
        }
        if (_options.TopP < 1.0)
        {
            var (sorted, order) = scaled.sort(-1, descending: true);
            var cumulative = sorted.softmax(-1).cumsum(-1);
            // Drop a token when the tokens ranked above it already reach p (the first token always stays).
            var drop = (cumulative - sorted.softmax(-1)).gt(_options.TopP);
            var dropInOriginalOrder = zeros_like(drop).scatter(-1, order, drop);
            scaled = scaled.masked_fill(dropInOriginalOrder, float.NegativeInfinity);
        }
        var probs = scaled.softmax(-1);
        return multinomial(probs, 1, generator: _generator).squeeze(-1).MoveToOuterDisposeScope();
    }

    public void Dispose() => _generator?.Dispose();
}
