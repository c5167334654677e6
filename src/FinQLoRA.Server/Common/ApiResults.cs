using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;

namespace FinQLoRA.Server.Common;

/// <summary>A protocol record as a 200 response, serialized with the source-generated contract.</summary>
internal static class ApiResults
{
    /// <summary>Content type as OpenAI sends it (no charset parameter; JSON is UTF-8).</summary>
    public static JsonHttpResult<T> Json<T>(T body) => TypedResults.Json(body, OpenAiJson.Info<T>(), "application/json");
}
