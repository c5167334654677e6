using System.Text;
using System.Text.Json;
using FinQLoRA.Data.Chat;
using FinQLoRA.Server.Common;
using FinQLoRA.Serving.Decisions;

namespace FinQLoRA.Server.Decisions;

/// <summary>Reads a decision request's input and questions into the library's records, as the official clients send
/// them (input: a string or message items whose content is a string or parts; instructions: a string or parts), and
/// checks OpenAI's rules (1–400 questions; 2–255 distinct choices; 2–255 distinct levels; unique names; non-empty
/// instructions and labels); every refusal is a 400 naming the field (<c>questions[1].choices[0].value</c>).</summary>
internal static class DecisionsRequestReader
{
    public static List<ChatTurn> Input(JsonElement? input)
    {
        switch (RequestFields.Present(input))
        {
            case null: throw new ApiException(400, "'input' is required", "input", "missing_required_parameter");
            case { ValueKind: JsonValueKind.String } s:
                return [new ChatTurn("user", s.GetString()!)];
            case { ValueKind: JsonValueKind.Array } list:
                var messages = new List<ChatTurn>();
                int i = 0;
                foreach (var m in list.EnumerateArray())
                {
                    string param = $"input[{i++}]";
                    if (m.ValueKind != JsonValueKind.Object) throw RequestJson.Wrong(param, "an object with 'role' and 'content'");
                    if (String(m, "type", param) is { } type && type != "message")
                        throw new ApiException(400, $"{param}.type '{type}' is not supported; this server reads message items only", param + ".type");
                    string role = String(m, "role", param) ?? throw new ApiException(400, $"'{param}.role' is required", param + ".role", "missing_required_parameter");
                    if (role == "developer") role = "system"; // OpenAI's newer name for the system role
                    if (role is not ("system" or "user" or "assistant"))
                        throw new ApiException(400, $"{param}.role '{role}' is not one of user, system, developer, assistant", param + ".role");
                    messages.Add(new ChatTurn(role, Content(m, "content", param)));
                }
                if (messages.Count == 0) throw new ApiException(400, "'input' must not be empty", "input");
                return messages;
            default:
                throw RequestJson.Wrong("input", "a string or a list of messages");
        }
    }

    public static List<DecisionQuestion> Questions(JsonElement? questions)
    {
        var list = RequestFields.Present(questions) ?? throw new ApiException(400, "'questions' is required", "questions", "missing_required_parameter");
        if (list.ValueKind != JsonValueKind.Array) throw RequestJson.Wrong("questions", "a list of questions");
        int count = list.GetArrayLength();
        if (count is < 1 or > DecisionRequest.MaxQuestions)
            throw new ApiException(400, $"'questions' must hold 1 to {DecisionRequest.MaxQuestions} questions (got {count})", "questions");
        var result = new List<DecisionQuestion>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        int i = 0;
        foreach (var q in list.EnumerateArray())
        {
            string param = $"questions[{i++}]";
            if (q.ValueKind != JsonValueKind.Object) throw RequestJson.Wrong(param, "an object with 'type' and 'instructions'");
            string? name = String(q, "name", param);
            if (name is not null && !names.Add(name)) throw new ApiException(400, $"{param}.name '{name}' is used by another question; names must be unique", param + ".name");
            string instructions = Content(q, "instructions", param);
            if (instructions.Trim().Length == 0) throw new ApiException(400, $"'{param}.instructions' must not be empty", param + ".instructions");
            string type = String(q, "type", param) ?? throw new ApiException(400, $"'{param}.type' is required", param + ".type", "missing_required_parameter");
            result.Add(type switch
            {
                "predicate" => new PredicateQuestion(instructions, name),
                "choice" => new ChoiceQuestion(instructions, Choices(q, param), name),
                "score" => new ScoreQuestion(instructions, Levels(q, param), name),
                _ => throw new ApiException(400, $"{param}.type '{type}' is not one of predicate, choice, score", param + ".type"),
            });
        }
        return result;
    }

    private static List<DecisionOption> Choices(JsonElement q, string param)
    {
        var items = Items(q, "choices", param, 2, DecisionRequest.MaxChoices);
        var options = new List<DecisionOption>();
        for (int j = 0; j < items.Count; j++)
        {
            string p = $"{param}.choices[{j}]";
            var c = items[j];
            if (c.ValueKind != JsonValueKind.Object) throw RequestJson.Wrong(p, "an object with 'value'");
            DecisionValue value = c.TryGetProperty("value", out var v) ? v.ValueKind switch
            {
                JsonValueKind.True => DecisionValue.Of(true),
                JsonValueKind.False => DecisionValue.Of(false),
                JsonValueKind.String when v.GetString()!.Trim().Length > 0 => DecisionValue.Of(v.GetString()!),
                JsonValueKind.String => throw new ApiException(400, $"'{p}.value' must not be empty", p + ".value"),
                _ => throw RequestJson.Wrong(p + ".value", "a string or a boolean"),
            } : throw new ApiException(400, $"'{p}.value' is required", p + ".value", "missing_required_parameter");
            if (options.Any(o => o.Value == value)) throw new ApiException(400, $"{p}.value {value} repeats an earlier choice; values must be distinct", p + ".value");
            // "true" and true are different values but the same answer text: the model could not tell them apart
            if (options.Any(o => o.Value.Label == value.Label))
                throw new ApiException(400, $"{p}.value {value} reads as an earlier choice's text; choices must read differently", p + ".value");
            options.Add(new DecisionOption(value, String(c, "description", p)));
        }
        return options;
    }

    private static List<DecisionLevel> Levels(JsonElement q, string param)
    {
        var items = Items(q, "levels", param, 2, DecisionRequest.MaxChoices);
        var levels = new List<DecisionLevel>();
        for (int j = 0; j < items.Count; j++)
        {
            string p = $"{param}.levels[{j}]";
            if (items[j].ValueKind != JsonValueKind.Object) throw RequestJson.Wrong(p, "an object with 'label'");
            string label = NonEmpty(items[j], "label", p);
            if (levels.Any(l => l.Label == label)) throw new ApiException(400, $"{p}.label '{label}' repeats an earlier level; labels must be distinct", p + ".label");
            levels.Add(new DecisionLevel(label, String(items[j], "description", p)));
        }
        return levels;
    }

    private static List<JsonElement> Items(JsonElement q, string field, string param, int min, int max)
    {
        string p = $"{param}.{field}";
        if (!q.TryGetProperty(field, out var list) || list.ValueKind == JsonValueKind.Null)
            throw new ApiException(400, $"'{p}' is required", p, "missing_required_parameter");
        if (list.ValueKind != JsonValueKind.Array) throw RequestJson.Wrong(p, "a list");
        var items = list.EnumerateArray().ToList();
        if (items.Count < min || items.Count > max) throw new ApiException(400, $"'{p}' must hold {min} to {max} entries (got {items.Count})", p);
        return items;
    }

    private static string NonEmpty(JsonElement o, string field, string param)
    {
        string? value = String(o, field, param);
        if (value is null) throw new ApiException(400, $"'{param}.{field}' is required", $"{param}.{field}", "missing_required_parameter");
        if (value.Trim().Length == 0) throw new ApiException(400, $"'{param}.{field}' must not be empty", $"{param}.{field}");
        return value;
    }

    /// <summary>An optional string field (null when absent or JSON null).</summary>
    private static string? String(JsonElement o, string field, string param) =>
        !o.TryGetProperty(field, out var v) || v.ValueKind == JsonValueKind.Null ? null
        : v.ValueKind == JsonValueKind.String ? v.GetString()
        : throw RequestJson.Wrong($"{param}.{field}", "a string");

    /// <summary>A message's text: a string, or its parts joined: <c>input_text</c>/<c>output_text</c> by their text,
    /// <c>input_json</c> by its data written as JSON, an assistant's <c>refusal</c> by its text. Images are refused
    /// (this server reads text only); prompt-cache breakpoints on parts are accepted and not needed (caching is automatic).</summary>
    private static string Content(JsonElement m, string field, string param)
    {
        if (!m.TryGetProperty(field, out var c) || c.ValueKind == JsonValueKind.Null)
            throw new ApiException(400, $"'{param}.{field}' is required", $"{param}.{field}", "missing_required_parameter");
        if (c.ValueKind == JsonValueKind.String) return c.GetString()!;
        if (c.ValueKind != JsonValueKind.Array) throw RequestJson.Wrong($"{param}.{field}", "a string or a list of parts");
        var text = new List<string>();
        int k = 0;
        foreach (var part in c.EnumerateArray())
        {
            string p = $"{param}.{field}[{k++}]";
            if (part.ValueKind != JsonValueKind.Object) throw RequestJson.Wrong(p, "an object with 'type'");
            string type = String(part, "type", p) ?? throw new ApiException(400, $"'{p}.type' is required", p + ".type", "missing_required_parameter");
            text.Add(type switch
            {
                "input_text" or "output_text" or "text" => NonNull(part, "text", p),
                "refusal" => NonNull(part, "refusal", p),
                "input_json" => part.TryGetProperty("data", out var data) ? JsonText(data) : throw new ApiException(400, $"'{p}.data' is required", p + ".data", "missing_required_parameter"),
                "input_image" => throw new ApiException(400, $"{p}: input_image parts are not supported; this server reads text only", p + ".type"),
                _ => throw new ApiException(400, $"{p}.type '{type}' is not one of input_text, input_json, output_text, refusal", p + ".type"),
            });
        }
        return string.Join("\n", text);
    }

    /// <summary>JSON data as the model reads it: each value of a list on its own line, compact.</summary>
    private static string JsonText(JsonElement data) =>
        data.ValueKind == JsonValueKind.Array ? string.Join("\n", data.EnumerateArray().Select(d => d.GetRawText())) : data.GetRawText();

    private static string NonNull(JsonElement o, string field, string param) =>
        String(o, field, param) ?? throw new ApiException(400, $"'{param}.{field}' is required", $"{param}.{field}", "missing_required_parameter");
}
