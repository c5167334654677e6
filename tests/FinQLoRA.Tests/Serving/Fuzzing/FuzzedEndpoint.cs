using System.Text.Json.Nodes;

namespace FinQLoRA.Tests.Serving.Fuzzing;

/// <summary>One route the request fuzzer covers: its method, a path (random where the route has a parameter) and, for a
/// route that reads a JSON body, a valid body with random field values for the fuzzer to damage (null for the others).</summary>
internal sealed record FuzzedEndpoint(string Method, string Route, Func<Random, string> Path, Func<Random, JsonObject>? ValidBody = null)
{
    public FuzzedEndpoint(string method, string route, Func<Random, JsonObject>? validBody = null)
        : this(method, route, _ => route, validBody) { }

    public override string ToString() => $"{Method} {Route}";
}
