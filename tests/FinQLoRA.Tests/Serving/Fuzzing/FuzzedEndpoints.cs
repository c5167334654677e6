using System.Text.Json.Nodes;

namespace FinQLoRA.Tests.Serving.Fuzzing;

/// <summary>
/// Every route of the server with what a valid request to it looks like, its field values drawn at random (small
/// <c>max_tokens</c>, so that the requests that get through stay quick on the tiny model). A new route is one line in
/// <see cref="For"/> (a GET route needs no body; a POST route names its valid body).
/// </summary>
internal static class FuzzedEndpoints
{
    public static IReadOnlyList<FuzzedEndpoint> For(FuzzServeFixture f)
    {
        var bodies = new ValidBodies(f);
        return
        [
            new("POST", "/v1/completions", bodies.Completion),
            new("POST", "/v1/chat/completions", bodies.Chat),
            new("POST", "/v1/decisions", bodies.Decision),
            new("POST", "/v1/load_lora_adapter", bodies.LoadAdapter),
            new("POST", "/v1/unload_lora_adapter", bodies.UnloadAdapter),
            new("GET", "/v1/models"),
            new("GET", "/v1/models/{id}", r => "/v1/models/" + RandomPathSegment(r, bodies.Model(r))),
            new("GET", "/metrics"),
            new("GET", "/health"),
            new("GET", "/ready"),
            new("GET", "/"),
            new("GET", "/console/{file}", r => "/console/" + RandomPathSegment(r, "app.js")),
            new("POST", "/tokenize", bodies.Tokenize),
            new("POST", "/detokenize", bodies.Detokenize),
            new("GET", "/v1/{unknown}", r => "/v1/" + RandomPathSegment(r, "tokenize")),
        ];
    }

    /// <summary>A path segment: a served name, or one that is odd (percent-encoded bytes that are no UTF-8, an encoded
    /// surrogate, a NUL, dots, a long name).</summary>
    private static string RandomPathSegment(Random r, string name) => r.Next(8) switch
    {
        0 => "%ED%A0%80", // U+D800 encoded as UTF-8: not a valid sequence
        1 => "%FF%FE" + name,
        2 => name + "%00",
        3 => "..%2F..%2F" + name,
        4 => new string('m', r.Next(200, 3000)),
        5 => Uri.EscapeDataString(name + "/ü 😀"),
        _ => name,
    };

    /// <summary>The valid bodies; each field present or not at random, its value one a client could send.</summary>
    private sealed class ValidBodies(FuzzServeFixture f)
    {
        private static readonly string[] Texts = ["Once upon a time", "What is a bond?", "Die Zinsen steigen. ü", "", "a\nb\tc \"quoted\" \\ 😀"];

        public string Model(Random r) => r.Next(4) == 0 ? "a" : FuzzServeFixture.BaseName;

        public JsonObject Completion(Random r)
        {
            var body = new JsonObject
            {
                ["model"] = Model(r),
                ["prompt"] = r.Next(4) switch
                {
                    0 => new JsonArray(Text(r), Text(r)),
                    1 => new JsonArray(1, 403, 407, 261),
                    2 => new JsonArray(new JsonArray(1, 88, 19), new JsonArray(5, 6)),
                    _ => Text(r),
                },
                ["max_tokens"] = r.Next(1, 6),
            };
            Sampling(r, body);
            Maybe(r, body, "echo", () => r.Next(2) == 0);
            Maybe(r, body, "logprobs", () => r.Next(0, 3));
            Maybe(r, body, "structured_outputs", () => StructuredOutputs(r));
            return body;
        }

        public JsonObject Chat(Random r)
        {
            var messages = new JsonArray();
            if (r.Next(2) == 0) messages.Add(new JsonObject { ["role"] = r.Next(2) == 0 ? "system" : "developer", ["content"] = Text(r) });
            messages.Add(new JsonObject
            {
                ["role"] = "user",
                ["content"] = r.Next(2) == 0 ? Text(r) : new JsonArray(new JsonObject { ["type"] = "text", ["text"] = Text(r) }),
            });
            if (r.Next(3) == 0)
            {
                messages.Add(new JsonObject { ["role"] = "assistant", ["content"] = Text(r) });
                messages.Add(new JsonObject { ["role"] = "user", ["content"] = Text(r) });
            }
            var body = new JsonObject { ["model"] = Model(r), ["messages"] = messages, ["max_completion_tokens"] = r.Next(1, 6) };
            Sampling(r, body);
            Maybe(r, body, "logprobs", () => true);
            Maybe(r, body, "top_logprobs", () => r.Next(0, 3));
            if (r.Next(3) == 0) body["response_format"] = ResponseFormat(r);
            else Maybe(r, body, "structured_outputs", () => StructuredOutputs(r));
            return body;
        }

        public JsonObject Decision(Random r)
        {
            var questions = new JsonArray(
                new JsonObject { ["type"] = "predicate", ["instructions"] = "Is it about rates?", ["name"] = "rates" },
                new JsonObject
                {
                    ["type"] = "choice", ["instructions"] = new JsonArray(new JsonObject { ["type"] = "input_text", ["text"] = "The sentiment?" }),
                    ["choices"] = new JsonArray(new JsonObject { ["value"] = "positive", ["description"] = "good news" }, new JsonObject { ["value"] = "negative" }),
                },
                new JsonObject
                {
                    ["type"] = "score", ["instructions"] = "How risky?",
                    ["levels"] = new JsonArray(new JsonObject { ["label"] = "low" }, new JsonObject { ["label"] = "high", ["description"] = "very" }),
                });
            var body = new JsonObject
            {
                ["model"] = Model(r),
                ["input"] = r.Next(2) == 0 ? Text(r) + "x"
                    : new JsonArray(new JsonObject
                    {
                        ["type"] = "message", ["role"] = "user",
                        ["content"] = new JsonArray(new JsonObject { ["type"] = "input_text", ["text"] = Text(r) + "x" }),
                    }),
                ["questions"] = questions,
            };
            Maybe(r, body, "prompt_cache_key", () => "desk-" + r.Next(3));
            return body;
        }

        public JsonObject LoadAdapter(Random r) => new()
        {
            ["lora_name"] = AdapterName(r),
            ["lora_path"] = Path.Combine(f.AdapterRoot, r.Next(2) == 0 ? "a" : "b"),
        };

        public JsonObject UnloadAdapter(Random r) => new() { ["lora_name"] = AdapterName(r) };

        public JsonObject Tokenize(Random r)
        {
            var body = new JsonObject();
            Maybe(r, body, "model", () => Model(r));
            if (r.Next(2) == 0)
            {
                body["prompt"] = Text(r);
                Maybe(r, body, "add_special_tokens", () => r.Next(2) == 0);
            }
            else
            {
                body["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = Text(r) });
                Maybe(r, body, "add_generation_prompt", () => r.Next(2) == 0);
            }
            Maybe(r, body, "return_token_strs", () => r.Next(2) == 0);
            return body;
        }

        public JsonObject Detokenize(Random r)
        {
            var body = new JsonObject { ["tokens"] = new JsonArray(Enumerable.Range(0, r.Next(0, 6)).Select(_ => (JsonNode)r.Next(0, 600)).ToArray()) };
            Maybe(r, body, "model", () => Model(r));
            return body;
        }

        private static string AdapterName(Random r) => new[] { "a", "b", "fuzzed", FuzzServeFixture.BaseName }[r.Next(4)];

        private static string Text(Random r) => Texts[r.Next(Texts.Length)];

        /// <summary>The sampling fields completions and chat share, each present or not.</summary>
        private static void Sampling(Random r, JsonObject body)
        {
            Maybe(r, body, "temperature", () => r.Next(2) == 0 ? 0 : Math.Round(r.NextDouble() * 2, 2));
            Maybe(r, body, "top_p", () => Math.Round(r.NextDouble(), 2));
            Maybe(r, body, "top_k", () => r.Next(0, 50));
            Maybe(r, body, "seed", () => r.Next());
            Maybe(r, body, "n", () => r.Next(1, 3));
            Maybe(r, body, "stop", () => r.Next(2) == 0 ? (JsonNode)" the" : new JsonArray(".", "\n"));
            Maybe(r, body, "stream", () => r.Next(2) == 0);
            Maybe(r, body, "stream_options", () => new JsonObject { ["include_usage"] = r.Next(2) == 0 });
            Maybe(r, body, "prompt_cache_key", () => "user-" + r.Next(3));
            Maybe(r, body, "priority", () => r.Next(3) == 0 ? r.Next(-5, 5) : 0);
        }

        private static JsonNode StructuredOutputs(Random r) => r.Next(3) switch
        {
            0 => new JsonObject { ["choice"] = new JsonArray("yes", "no", "maybe") },
            1 => new JsonObject { ["regex"] = "[a-z]{1,4}( [0-9]+)?" },
            // a schema sent as a string: its own strings are read after a second parse
            _ => new JsonObject { ["json"] = """{"type":"object","properties":{"k":{"type":"string","pattern":"[a-c]+","description":"key"}},"required":["k"]}""" },
        };

        private static JsonObject ResponseFormat(Random r) => r.Next(3) switch
        {
            0 => new JsonObject { ["type"] = "json_object" },
            1 => new JsonObject { ["type"] = "text" },
            _ => new JsonObject
            {
                ["type"] = "json_schema",
                ["json_schema"] = new JsonObject
                {
                    ["name"] = "answer", ["strict"] = true,
                    ["schema"] = new JsonObject
                    {
                        ["type"] = "object",
                        ["properties"] = new JsonObject
                        {
                            ["label"] = new JsonObject { ["type"] = "string", ["enum"] = new JsonArray("up", "down") },
                            ["why"] = new JsonObject { ["type"] = "string", ["pattern"] = "[a-z]{0,3}", ["description"] = "reason", ["maxLength"] = 3 },
                        },
                        ["required"] = new JsonArray("label"),
                        ["additionalProperties"] = false,
                    },
                },
            },
        };

        private static void Maybe(Random r, JsonObject body, string field, Func<JsonNode?> value)
        {
            if (r.Next(2) == 0) body[field] = value();
        }
    }
}
