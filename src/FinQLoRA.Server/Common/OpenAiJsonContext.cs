using System.Text.Json.Serialization;
using FinQLoRA.Server.Adapters;
using FinQLoRA.Server.ChatCompletions;
using FinQLoRA.Server.Completions;
using FinQLoRA.Server.Decisions;
using FinQLoRA.Server.Models;
using FinQLoRA.Server.Tokenize;

namespace FinQLoRA.Server.Common;

/// <summary>The source-generated (de)serializers of every protocol record: no reflection over request types at run
/// time, and a record field missing from the contract is a build error rather than a silently absent field. OpenAI's
/// names are the records' names in snake case (<c>FinishReason</c> is <c>finish_reason</c>), so no record spells them.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(CompletionRequest))]
[JsonSerializable(typeof(CompletionResponse))]
[JsonSerializable(typeof(ChatCompletionRequest))]
[JsonSerializable(typeof(ChatCompletionObject<ChatChoice>))]
[JsonSerializable(typeof(ChatCompletionObject<ChatChunkChoice>))]
[JsonSerializable(typeof(ModelList))]
[JsonSerializable(typeof(ModelCard))]
[JsonSerializable(typeof(LoadLoraAdapterRequest))]
[JsonSerializable(typeof(UnloadLoraAdapterRequest))]
[JsonSerializable(typeof(DecisionsRequest))]
[JsonSerializable(typeof(DecisionsResponse))]
[JsonSerializable(typeof(TokenizeRequest))]
[JsonSerializable(typeof(TokenizeResponse))]
[JsonSerializable(typeof(DetokenizeRequest))]
[JsonSerializable(typeof(DetokenizeResponse))]
[JsonSerializable(typeof(bool))]
[JsonSerializable(typeof(string))]
[JsonSerializable(typeof(ErrorResponse))]
internal sealed partial class OpenAiJsonContext : JsonSerializerContext;
