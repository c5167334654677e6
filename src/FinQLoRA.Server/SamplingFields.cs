using FinQLoRA.Serving;

namespace FinQLoRA.Server;

/// <summary>The sampling fields completions and chat share, read and range-checked (OpenAI's defaults: temperature
/// 1, top_p 1; a request without a seed gets a random one).</summary>
internal static class SamplingFields
{
    public static SamplingParams Read(RequestBody body, int maxTokens, int? logprobs)
    {
        body.Unsupported("logit_bias", v => v.ValueKind == System.Text.Json.JsonValueKind.Object && !v.EnumerateObject().Any());
        body.Unsupported("presence_penalty", v => v.ValueKind == System.Text.Json.JsonValueKind.Number && v.GetDouble() == 0);
        body.Unsupported("frequency_penalty", v => v.ValueKind == System.Text.Json.JsonValueKind.Number && v.GetDouble() == 0);
        return new SamplingParams
        {
            MaxTokens = maxTokens,
            Temperature = body.Double("temperature", 0, 2) ?? 1.0,
            TopP = body.Double("top_p", double.Epsilon, 1) ?? 1.0,
            TopK = body.Int("top_k", 0, int.MaxValue) ?? 0,
            Seed = body.Long("seed") ?? Random.Shared.NextInt64(),
            Stop = body.StringOrList("stop", 16).Where(s => s.Length > 0).ToList(),
            Logprobs = logprobs,
        };
    }

    /// <summary>Choice j of n draws with seed + j, so that n sampled choices differ yet a seed reproduces all of them.</summary>
    public static SamplingParams ForChoice(SamplingParams s, int j) => j == 0 ? s : s with { Seed = unchecked(s.Seed + j) };
}
