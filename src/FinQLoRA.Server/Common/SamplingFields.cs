using System.Text.Json;
using FinQLoRA.Serving;

namespace FinQLoRA.Server.Common;

/// <summary>The sampling fields completions and chat share, range-checked (OpenAI's defaults: temperature 1, top_p 1;
/// a request without a seed gets a random one).</summary>
internal static class SamplingFields
{
    public static SamplingParams Read(SamplingRequest request, int maxTokens, int? logprobs)
    {
        RequestFields.Unsupported(request.LogitBias, "logit_bias", v => v.ValueKind == JsonValueKind.Object && !v.EnumerateObject().Any());
        RequestFields.Unsupported(request.PresencePenalty, "presence_penalty", v => v.ValueKind == JsonValueKind.Number && v.GetDouble() == 0);
        RequestFields.Unsupported(request.FrequencyPenalty, "frequency_penalty", v => v.ValueKind == JsonValueKind.Number && v.GetDouble() == 0);
        return new SamplingParams
        {
            MaxTokens = maxTokens,
            Temperature = RequestFields.InRange(request.Temperature, "temperature", 0, 2) ?? 1.0,
            TopP = RequestFields.InRange(request.TopP, "top_p", double.Epsilon, 1) ?? 1.0,
            TopK = RequestFields.InRange(request.TopK, "top_k", 0, int.MaxValue) ?? 0,
            Seed = request.Seed ?? Random.Shared.NextInt64(),
            Stop = RequestFields.StringOrList(request.Stop, "stop", 16).Where(s => s.Length > 0).ToList(),
            Logprobs = logprobs,
        };
    }

    /// <summary>How many choices the request asks for (OpenAI's <c>n</c>, 1 by default).</summary>
    public static int Choices(SamplingRequest request, ServerState state) =>
        RequestFields.InRange(request.N, "n", 1, state.Options.MaxN) ?? 1;

    /// <summary>Whether the answer streams, and whether the stream ends with a usage chunk.</summary>
    public static (bool Stream, bool IncludeUsage) Streaming(SamplingRequest request)
    {
        bool stream = request.Stream ?? false;
        return (stream, stream && RequestFields.WantsUsage(request.StreamOptions));
    }

    /// <summary>Choice j of n draws with seed + j, so that n sampled choices differ yet a seed reproduces all of them.</summary>
    public static SamplingParams ForChoice(SamplingParams s, int j) => j == 0 ? s : s with { Seed = unchecked(s.Seed + j) };
}
