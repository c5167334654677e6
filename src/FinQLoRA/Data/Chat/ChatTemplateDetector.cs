using System.Text.Json;
using System.Text.Json.Nodes;

namespace FinQLoRA.Data.Chat;

/// <summary>
/// The one rule that tells which <see cref="ChatTemplateKind"/> a model uses, for train, <c>data stats</c>,
/// <c>generate --chat</c>, serve and the IChatClient alike. We do not run Jinja; we recognise the families we render
/// by tokenizer_config.json's <c>chat_template</c> (compared as <see cref="TemplateText"/>) and the family's special
/// tokens in the tokenizer, in this order:
/// <list type="number">
/// <item>ChatML (<c>&lt;|im_start|&gt;</c> in the template and <c>&lt;|im_start|&gt;</c>, <c>&lt;|im_end|&gt;</c> in the
/// tokenizer): plain, or Qwen's with a default system prompt (<see cref="ChatMlTemplate.Recognise"/>);</item>
/// <item>Mistral (<c>[INST]</c>, <c>&lt;s&gt;</c>, <c>&lt;/s&gt;</c>; v3 and tekken also <c>[INST]</c>, <c>[/INST]</c> as
/// tokens), its variant read from the template's expressions (<see cref="MistralTemplate.Recognise"/>);</item>
/// <item>Gemma (<c>&lt;start_of_turn&gt;</c>, <c>&lt;bos&gt;</c>, <c>&lt;end_of_turn&gt;</c>): 2 or 3;</item>
/// <item>Phi (<c>&lt;|end|&gt;</c>, <c>&lt;|user|&gt;</c>, <c>&lt;|assistant|&gt;</c>, <c>&lt;|endoftext|&gt;</c>):
/// Phi-3-mini, Phi-3.5-mini or Phi-4-mini;</item>
/// <item>else Llama 3, when the tokenizer has <c>&lt;|start_header_id|&gt;</c>, <c>&lt;|end_header_id|&gt;</c> and
/// <c>&lt;|eot_id|&gt;</c> (GGUF files and base models carry the tokens without a template file);</item>
/// <item>else none: callers refuse chat rather than invent a template.</item>
/// </list>
/// A template that is one of these families in a variant we do not render (Mistral's v7, Phi-3-medium's, Phi-4's
/// ChatML with <c>&lt;|im_sep|&gt;</c>, another default system prompt…) is refused, naming the family and the variant,
/// rather than rendered as a neighbour. The tokens come from the loaded tokenizer where there is one (generate,
/// serve), otherwise from the special tokens the model folder lists (train, data stats): the same evidence, read from
/// the same files.
/// </summary>
public static class ChatTemplateDetector
{
    public const string ConfigFileName = "tokenizer_config.json";
    private const string Names = ChatTemplate.Names;

    private static readonly Func<TemplateText, Func<string, int?>, Recognition?>[] Families =
        [ChatMlTemplate.Recognise, MistralTemplate.Recognise, GemmaTemplate.Recognise, PhiTemplate.Recognise];

    /// <param name="chatTemplate">tokenizer_config.json's chat_template, or null where there is none</param>
    /// <param name="tokenToId">the id of a special token, or null when the tokenizer has no such token</param>
    /// <param name="source">the file the template came from, for the refusal</param>
    /// <returns>the template, or null when the model has none we render</returns>
    /// <exception cref="UserInputException">the template is one of our families in a variant we do not render</exception>
    public static ChatTemplateKind? Detect(string? chatTemplate, Func<string, int?> tokenToId, string source = ConfigFileName)
    {
        if (chatTemplate is not null)
        {
            var text = new TemplateText(chatTemplate);
            foreach (var family in Families)
            {
                if (family(text, tokenToId) is not { } found) continue;
                return found.Kind ?? throw UserInputException.About(
                    $"{source}: its chat_template ({text.Excerpt()}) is {found.Unsupported}; write prompts in the model's own format instead, or choose a template with {new ConfigField("chat_template")} ({Names}) only if the model was trained on it");
            }
        }
        return Llama3Template.HasTokens(tokenToId) ? ChatTemplateKind.Llama3 : null;
    }

    /// <summary>What a <c>chat_template</c> setting (<c>auto</c> or a <see cref="ChatTemplate.Names"/> name) means for chat data: a named
    /// template, or with <c>auto</c> the one <paramref name="modelPath"/>'s files give.</summary>
    /// <param name="source">where the setting came from, for the error message</param>
    /// <param name="modelPath">the model folder (or its tokenizer.json), or null where none was given</param>
    public static ChatTemplateKind Resolve(string setting, string source, string? modelPath) =>
        setting != "auto" ? ChatTemplate.Parse(setting, source)
        : modelPath is not null ? FromModel(modelPath)
        : throw UserInputException.About($"chat data needs a chat template: name the model whose tokenizer_config.json gives it, or choose one with {new ConfigField("chat_template")} {Names}");

    /// <summary>The template of a model folder (or the folder of a tokenizer.json) without loading its tokenizer;
    /// throws, naming what was found, when the rule finds none.</summary>
    public static ChatTemplateKind FromModel(string modelPath)
    {
        string folder = File.Exists(modelPath) ? Path.GetDirectoryName(Path.GetFullPath(modelPath))! : modelPath;
        string file = Path.Combine(folder, ConfigFileName);
        bool hasConfig = File.Exists(file);
        var config = hasConfig ? ReadJson(file) : null;
        string? template = TemplateOf(config);
        var tokens = SpecialTokens(folder, config);
        if (Detect(template, t => tokens.TryGetValue(t, out int id) ? id : null, file) is { } kind) return kind;
        throw !hasConfig
            ? UserInputException.About($"{modelPath}: no tokenizer_config.json to take a chat template from; choose one with {new ConfigField("chat_template")} {Names}")
            : template is null
            ? UserInputException.About($"{file}: has no chat_template and the tokenizer has no Llama 3 header tokens; choose one with {new ConfigField("chat_template")} {Names}")
            : UserInputException.About($"{file}: its chat_template ({new TemplateText(template).Excerpt()}) is none we render (Llama 3, ChatML/Qwen, Mistral [INST], Gemma, Phi) with its special tokens in the tokenizer; choose one with {new ConfigField("chat_template")} {Names}");
    }

    /// <summary>tokenizer_config.json's <c>chat_template</c>: the text, or Hugging Face's list of named templates
    /// joined; null when it has none.</summary>
    public static string? ReadTemplate(string configFile) => TemplateOf(ReadJson(configFile));

    private static string? TemplateOf(JsonObject? config) => config?["chat_template"] switch
    {
        JsonValue v when v.TryGetValue(out string? text) => text,
        JsonArray a => string.Concat(a.Select(t => t?["template"]?.GetValue<string>())),
        _ => null,
    };

    /// <summary>The special tokens a folder lists: tokenizer_config.json's <c>added_tokens_decoder</c>, or where it has
    /// none, tokenizer.json's <c>added_tokens</c> (what the tokenizer loader reads them from).</summary>
    private static Dictionary<string, int> SpecialTokens(string folder, JsonObject? config)
    {
        var tokens = new Dictionary<string, int>(StringComparer.Ordinal);
        if (config?["added_tokens_decoder"] is JsonObject decoder)
            foreach (var (id, entry) in decoder)
                if (entry?["content"]?.GetValue<string>() is { } content && int.TryParse(id, out int n)) tokens[content] = n;
        string tokenizerJson = Path.Combine(folder, "tokenizer.json");
        if (tokens.Count == 0 && File.Exists(tokenizerJson))
            foreach (var entry in ReadJson(tokenizerJson)?["added_tokens"] as JsonArray ?? [])
                if (entry?["content"]?.GetValue<string>() is { } content && entry["id"]?.GetValue<int>() is { } n) tokens[content] = n;
        return tokens;
    }

    private static JsonObject? ReadJson(string file)
    {
        try { return JsonNode.Parse(File.ReadAllText(file)) as JsonObject; }
        catch (JsonException e) { throw new UserInputException($"{file}: invalid JSON ({e.Message})", e); }
    }
}
