using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace FinQLoRA.Tests.Serving.Fuzzing;

/// <summary>
/// Makes request number <c>index</c> of a seeded run: an endpoint's valid request, then up to three damages to its
/// fields (a value replaced by one of another type, null, a huge or negative number, a NaN-like string, deep nesting,
/// a long string; a field added, removed or given a lone surrogate escape, its value or its name) and at times one to
/// its wire form (truncated, bytes that are no UTF-8, empty, not an object, nested past the parser's limit, over the
/// body limit, another content type or method, a wrong or missing key). Each request draws from its own generator,
/// seeded by the run's seed and its index, so one request reads the same whatever came before it.
/// </summary>
internal sealed class RequestFuzzer(IReadOnlyList<FuzzedEndpoint> endpoints, string key, int maxBodyBytes)
{
    /// <summary>Fields of OpenAI's and vLLM's requests that a damage may set on any body, so that each endpoint also
    /// meets the fields of the others.</summary>
    private static readonly string[] KnownFields =
    [
        "model", "prompt", "messages", "max_tokens", "max_completion_tokens", "n", "stop", "temperature", "top_p", "top_k",
        "seed", "stream", "stream_options", "logprobs", "top_logprobs", "echo", "best_of", "suffix", "logit_bias",
        "presence_penalty", "frequency_penalty", "tools", "response_format", "structured_outputs", "prompt_cache_key",
        "input", "questions", "instructions", "lora_name", "lora_path", "user", "safety_identifier",
    ];

    public FuzzedRequest Make(long seed, int index)
    {
        var r = new Random(unchecked((int)(seed * 1_000_003 + index)));
        var endpoint = endpoints[r.Next(endpoints.Count)];
        var damage = new List<string>();
        string path = endpoint.Path(r);
        string method = endpoint.Method;
        string? contentType = null, authorization = $"Bearer {key}";
        byte[]? body = null;
        if (endpoint.ValidBody is { } valid)
        {
            var json = valid(r);
            int damages = r.Next(4); // 0: the valid request itself, the control
            for (int i = 0; i < damages; i++) damage.Add(DamageFields(r, json));
            contentType = "application/json";
            body = LoneSurrogates.Apply(Nest(json.ToJsonString()));
            if (r.Next(4) == 0) damage.Add(DamageWire(r, ref body, ref contentType, ref method));
        }
        else if (r.Next(8) == 0)
        {
            method = r.Next(2) == 0 ? "POST" : "DELETE";
            body = Encoding.UTF8.GetBytes("{\"model\":\"x\"}");
            contentType = "application/json";
            damage.Add($"method {method} on a GET route");
        }
        else if (r.Next(6) == 0)
        {
            path += "?" + new[] { "model=%ED%A0%80", "a=1&a=2", "x=" + new string('q', 2000), "%FF" }[r.Next(4)];
            damage.Add("query string");
        }
        if (r.Next(30) == 0)
        {
            authorization = new[] { null, "Bearer wrong", "Basic eDp5", "Bearer " + key + "x", "Bearer" }[r.Next(5)];
            damage.Add($"authorization '{authorization ?? "(none)"}'");
        }
        return new FuzzedRequest(index, endpoint, method, path, contentType, body, authorization, damage);
    }

    private static string DamageFields(Random r, JsonObject body)
    {
        var slots = Slots(body);
        switch (r.Next(6))
        {
            case 0:
            case 1:
            {
                var (parent, key, at) = slots[r.Next(slots.Count)];
                var value = Weird(r);
                Set(parent, key, value);
                return $"{at} = {Describe(value)}";
            }
            case 2:
            {
                string field = KnownFields[r.Next(KnownFields.Length)];
                var value = Weird(r);
                body[field] = value;
                return $"{field} = {Describe(value)}";
            }
            case 3:
            {
                string field = r.Next(3) == 0 ? "x" + LoneSurrogates.Marker(r.Next(LoneSurrogates.Escapes.Length)) : "extra_" + r.Next(1000);
                var objects = slots.Select(s => s.Parent).OfType<JsonObject>().Prepend(body).ToList();
                var target = objects[r.Next(objects.Count)];
                target[field] = Weird(r);
                return $"extra field {field}";
            }
            case 4:
            {
                var (parent, key, at) = slots[r.Next(slots.Count)];
                if (parent is JsonObject o) o.Remove((string)key);
                else ((JsonArray)parent).RemoveAt((int)key);
                return $"removed {at}";
            }
            default:
            {
                int escape = r.Next(LoneSurrogates.Escapes.Length);
                var strings = slots.Where(x => Get(x.Parent, x.Key) is JsonValue v && v.TryGetValue<string>(out _)).ToList();
                if (strings.Count == 0) strings = slots;
                var (parent, key, at) = strings[r.Next(strings.Count)];
                if (parent is JsonObject o && key is string name && r.Next(3) == 0)
                {
                    // the field's name, not its value
                    var value = o[name];
                    o.Remove(name);
                    o[name + LoneSurrogates.Marker(escape)] = value;
                    return $"name of {at} + {LoneSurrogates.Escapes[escape]}";
                }
                string old = Get(parent, key) is JsonValue sv && sv.TryGetValue<string>(out var s) ? s : "";
                Set(parent, key, old + LoneSurrogates.Marker(escape));
                return $"{at} + {LoneSurrogates.Escapes[escape]}";
            }
        }
    }

    /// <summary>Every place in the body a value sits (object field or list item), with its path.</summary>
    private static List<(JsonNode Parent, object Key, string At)> Slots(JsonObject body)
    {
        var slots = new List<(JsonNode, object, string)>();
        void Walk(JsonNode node, string at)
        {
            if (node is JsonObject o)
                foreach (var (name, value) in o.ToList())
                {
                    string child = at.Length == 0 ? name : $"{at}.{name}";
                    slots.Add((o, name, child));
                    if (value is not null) Walk(value, child);
                }
            else if (node is JsonArray a)
                for (int i = 0; i < a.Count; i++)
                {
                    slots.Add((a, i, $"{at}[{i}]"));
                    if (a[i] is { } item) Walk(item, $"{at}[{i}]");
                }
        }
        Walk(body, "");
        if (slots.Count == 0) slots.Add((body, "model", "model"));
        return slots;
    }

    private static JsonNode? Get(JsonNode parent, object key) => parent is JsonObject o ? o[(string)key] : parent[(int)key];

    private static void Set(JsonNode parent, object key, JsonNode? value)
    {
        if (parent is JsonObject o) o[(string)key] = value;
        else parent[(int)key] = value;
    }

    /// <summary>A value of a random JSON type, often one no field takes.</summary>
    private static JsonNode? Weird(Random r) => r.Next(22) switch
    {
        0 => null,
        1 => r.Next(2) == 0,
        2 => -r.NextInt64(1, long.MaxValue),
        3 => long.MaxValue,
        4 => JsonNode.Parse(new[] { "1e308", "-1e308", "1e400", "18446744073709551616", "-0", "0.5", "1.0", "1e2", "-2147483649" }[r.Next(9)]),
        5 => new[] { "NaN", "Infinity", "-Infinity", "nan", "1e999", "0x10", "" }[r.Next(7)],
        6 => r.Next(-3, 100),
        7 => r.NextDouble() * 4 - 2,
        8 => new JsonArray(),
        9 => new JsonArray(null, 1, "a", new JsonObject()),
        10 => new JsonObject(),
        11 => new JsonObject { ["type"] = "text", ["text"] = "x", ["nested"] = new JsonObject { ["deep"] = new JsonArray(1) } },
        12 => $"@@DEEP{r.Next(10, 120)}@@", // written by Nest: a JSON writer refuses to go past 64 levels
        13 => new string('x', r.Next(100, 5000)),
        14 => "x" + LoneSurrogates.Marker(r.Next(LoneSurrogates.Escapes.Length)),
        15 => LoneSurrogates.ValidPairMarker,
        16 => "\u0000\u001f\u007f\u2028 ü 😀",
        17 => new JsonArray(1, 2, -5, int.MaxValue, 100000),
        18 => new JsonArray(new JsonArray(), new JsonArray(1)),
        19 => new JsonArray(Enumerable.Range(0, r.Next(50, 500)).Select(i => (JsonNode?)$"s{i}").ToArray()),
        20 => new[] { "system", "user", "assistant", "tool", "developer", "choice", "predicate", "score", "json_schema", "json_object" }[r.Next(10)],
        _ => "a",
    };

    /// <summary>The body with each deep-nesting marker replaced by lists and objects nested that deep.</summary>
    private static string Nest(string json) => Regex.Replace(json, "\"@@DEEP([0-9]+)@@\"", m =>
    {
        int depth = int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
        var open = new StringBuilder();
        for (int i = 0; i < depth; i++) open.Append(i % 2 == 0 ? "[" : "{\"n\":");
        var close = new StringBuilder();
        for (int i = depth - 1; i >= 0; i--) close.Append(i % 2 == 0 ? "]" : "}");
        return open + "0" + close;
    });

    private static string Describe(JsonNode? value)
    {
        string text = value?.ToJsonString() ?? "null";
        return text.Length > 60 ? text[..60] + $"… ({text.Length} chars)" : text;
    }

    private string DamageWire(Random r, ref byte[] body, ref string? contentType, ref string method)
    {
        switch (r.Next(9))
        {
            case 0:
                body = body[..r.Next(body.Length)];
                return $"truncated to {body.Length} bytes";
            case 1:
            {
                var bytes = body.ToList();
                int at = r.Next(bytes.Count + 1);
                byte[] bad = new[] { new byte[] { 0xFF }, [0xC3], [0xED, 0xA0, 0x80], [0xF8, 0x88, 0x80, 0x80, 0x80], [0x80], [0xC0, 0xAF] }[r.Next(6)];
                bytes.InsertRange(at, bad);
                body = [.. bytes];
                return $"bytes {Convert.ToHexString(bad)} (no UTF-8) at {at}";
            }
            case 2:
                body = [];
                return "empty body";
            case 3:
                body = Encoding.UTF8.GetBytes(new[] { "null", "42", "\"text\"", "[]", "[{}]", "true", " ", "{", "}", "{\"a\":}" }[r.Next(10)]);
                return "not a JSON object";
            case 4:
                body = Encoding.UTF8.GetBytes(new string('[', 5000) + new string(']', 5000));
                return "nested 5000 deep";
            case 5:
                body = Encoding.UTF8.GetBytes($"{{\"model\":\"{new string('m', maxBodyBytes + r.Next(1, 4096))}\"}}");
                return "over the body limit";
            case 6:
                contentType = new[] { null, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/json; charset=utf-16", "application/json; charset=latin1" }[r.Next(6)];
                return $"content type {contentType ?? "(none)"}";
            case 7:
                method = new[] { "GET", "PUT", "DELETE", "PATCH" }[r.Next(4)];
                return $"method {method}";
            default:
                body = Encoding.UTF8.GetBytes("\uFEFF" + Encoding.UTF8.GetString(body)); // a byte order mark first
                return "UTF-8 byte order mark";
        }
    }
}
