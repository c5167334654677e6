using System.Text.Json.Nodes;
using FinQLoRA.Data.Chat;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Data.Chat;

/// <summary>One detection rule: a model folder read without its tokenizer (train, data stats) and the loaded tokenizer
/// (generate --chat, serve) give the same template for every case; a model without one is refused, naming why.</summary>
public sealed class ChatTemplateDetectorTests
{
    private const string ChatMlTemplate = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}";
    private const string Llama3Template = "{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n{{ m.content }}<|eot_id|>{% endfor %}";
    private static readonly string[] ChatMlTokens = ["<|im_start|>", "<|im_end|>"];
    private static readonly string[] Llama3Tokens = ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"];

    public static TheoryData<string, JsonNode?, string[], ChatTemplateKind?> Cases => new()
    {
        { "chatml", ChatMlTemplate, ChatMlTokens, ChatTemplateKind.ChatMl },
        { "chatml named", new JsonArray(new JsonObject { ["name"] = "default", ["template"] = ChatMlTemplate }), ChatMlTokens, ChatTemplateKind.ChatMl },
        { "llama3", Llama3Template, Llama3Tokens, ChatTemplateKind.Llama3 },
        { "llama3 base, no template", null, Llama3Tokens, ChatTemplateKind.Llama3 },
        { "chatml template over llama3 tokens", ChatMlTemplate, Llama3Tokens, ChatTemplateKind.Llama3 },
        { "chatml tokens, no template", null, ChatMlTokens, null },
        { "chatml template, no tokens", ChatMlTemplate, [], null },
        { "llama3 template, no tokens", Llama3Template, [], null },
        { "mistral", "{% for m in messages %}[INST] {{ m.content }} [/INST]{% endfor %}", [], null },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void TheFolderAndTheLoadedTokenizerGiveTheSameTemplate(string name, JsonNode? template, string[] tokens, ChatTemplateKind? expected)
    {
        using var dir = new TempFolder();
        string config = WriteConfig(dir.Path, template, tokens);
        var loaded = ChatFormat.Detect(SpecialTokensTokenizer.Numbered(tokens), config);
        Assert.True(expected == loaded?.Kind, $"{name}: the loaded tokenizer gives {loaded?.Name ?? "none"}");
        if (expected is { } kind)
        {
            Assert.Equal(kind, ChatTemplateDetector.FromModel(dir.Path));
            Assert.Equal([Array.IndexOf(tokens, ChatTemplate.EndOfTurn(kind)) + 100], loaded!.StopIds);
        }
        else
        {
            var e = Assert.Throws<UserInputException>(() => ChatTemplateDetector.FromModel(dir.Path));
            Assert.Contains(template is null ? "has no chat_template" : "none we render", e.Message);
            Assert.Contains("--chat-template", FinQLoRA.Cli.FlagNames.Render(e));
        }
    }

    private static readonly string[] GemmaTokens = ["<bos>", "<start_of_turn>", "<end_of_turn>"];
    private static readonly string[] MistralTokens = ["<s>", "</s>", "[INST]", "[/INST]"];

    // Gemma 2's template (google/gemma-2-9b-it) as Hugging Face stores it, and the same template written three other
    // ways a copy may write it: escaped newlines, other whitespace in the tags, double quotes.
    private const string Gemma2Template = "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}";

    public static TheoryData<string, string> Gemma2Spellings => new()
    {
        { "as stored", Gemma2Template },
        { "escaped newlines", Gemma2Template.Replace("\n", "\\n") },
        { "other whitespace", Gemma2Template.Replace("{% ", "{%- ").Replace(" %}", " -%}\n    ").Replace("{{ ", "{{-  ").Replace(" + ", "+") },
        { "double quotes", Gemma2Template.Replace("'<start_of_turn>'", "\"<start_of_turn>\"").Replace("'model'", "\"model\"") },
    };

    [Theory]
    [MemberData(nameof(Gemma2Spellings))]
    public void ATemplateIsRecognisedHoweverItIsWrittenDown(string name, string template)
    {
        Assert.True(ChatTemplateKind.Gemma2 == ChatTemplateDetector.Detect(template, SpecialTokensTokenizer.Numbered(GemmaTokens).TokenToId), name);
        Assert.Null(ChatTemplateDetector.Detect(template, SpecialTokensTokenizer.Numbered(["<bos>"]).TokenToId)); // not Gemma's tokenizer
    }

    public static TheoryData<string, string, string[], string> Variants => new()
    {
        { "Mistral without its expressions", "{% for m in messages %}[INST] {{ m.content }} [/INST]{% endfor %}", MistralTokens, "Mistral's [INST] template in a variant we do not render (no user turn we can read" },
        { "Mistral v7", "{{ bos_token }}{% for m in messages %}{{ '[SYSTEM_PROMPT] ' + m['content'] + '[/SYSTEM_PROMPT]' }}{% endfor %}[INST]", MistralTokens, "v7 form" },
        { "another default system prompt", "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}", ChatMlTokens, "\"You are a helpful AI assistant named SmolLM\"" },
        { "a reasoning model's opened reply", "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n<think>\n' }}{% endif %}", ChatMlTokens, "opens every reply with <think>" },
        { "Gemma without its expressions", "{% for m in messages %}<start_of_turn>{{ m.role }}\n{{ m.content }}<end_of_turn>\n{% endfor %}", GemmaTokens, "Gemma's <start_of_turn> template in a variant" },
    };

    [Theory]
    [MemberData(nameof(Variants))]
    public void AFamilysVariantWeDoNotRenderIsRefusedNotRenderedAsANeighbour(string name, string template, string[] tokens, string named)
    {
        var e = Assert.Throws<UserInputException>(() => ChatTemplateDetector.Detect(template, SpecialTokensTokenizer.Numbered(tokens).TokenToId, "x/tokenizer_config.json"));
        Assert.True(e.Message.Contains(named, StringComparison.Ordinal), $"{name}: {e.Message}");
        Assert.StartsWith("x/tokenizer_config.json: its chat_template (", e.Message);
        Assert.Contains("--chat-template", FinQLoRA.Cli.FlagNames.Render(e));
    }

    [Fact]
    public void TokensComeFromTokenizerJsonWhenTheConfigListsNone()
    {
        using var dir = new TempFolder();
        WriteConfig(dir.Path, null, []);
        File.WriteAllText(Path.Combine(dir.Path, "tokenizer.json"), new JsonObject
        {
            ["added_tokens"] = new JsonArray([.. Llama3Tokens.Select((t, i) => (JsonNode)new JsonObject { ["id"] = 100 + i, ["content"] = t })]),
        }.ToJsonString());
        Assert.Equal(ChatTemplateKind.Llama3, ChatTemplateDetector.FromModel(dir.Path));
        Assert.Equal(ChatTemplateKind.Llama3, ChatTemplateDetector.FromModel(Path.Combine(dir.Path, "tokenizer.json")));
    }

    [Fact]
    public void AFolderWithoutTokenizerFilesIsRefused()
    {
        using var dir = new TempFolder();
        var e = Assert.Throws<UserInputException>(() => ChatTemplateDetector.FromModel(dir.Path));
        Assert.Contains("no tokenizer_config.json", e.Message);
    }

    [Fact]
    public void ASettingNamesATemplateOrAsksTheModel()
    {
        using var dir = new TempFolder(); // no files: a named template never reads the model
        Assert.Equal(ChatTemplateKind.ChatMl, ChatTemplateDetector.Resolve("chatml", "chat_template", dir.Path));
        Assert.Equal(ChatTemplateKind.None, ChatTemplateDetector.Resolve("none", "chat_template", null));
        Assert.Throws<UserInputException>(() => ChatTemplateDetector.Resolve("auto", "chat_template", dir.Path));
        var noModel = Assert.Throws<UserInputException>(() => ChatTemplateDetector.Resolve("auto", "--chat-template", null));
        Assert.Contains("--chat-template", FinQLoRA.Cli.FlagNames.Render(noModel));
        Assert.Contains("llama4", Assert.Throws<UserInputException>(() => ChatTemplateDetector.Resolve("llama4", "--chat-template", null)).Message);
    }

    [Fact]
    public void GenerateChatRefusesAModelWithoutATemplate()
    {
        // the seeded tokenizer has only <unk>, <s> and </s>: no chat template to wrap the prompt in
        var r = CliProcess.RunSeparately(TimeSpan.FromMinutes(2), "generate", "--model", SeededLlama.Folder, "--dtype", "f32", "--chat",
            "--prompt", "What is EPS?", "--max-new-tokens", "2");
        CliProcess.AssertOneLineError(r, "--chat");
        Assert.Contains("no chat template", r.Stderr);
    }

    /// <summary>tokenizer_config.json with the template and the tokens (ids from 100) in added_tokens_decoder.</summary>
    private static string WriteConfig(string folder, JsonNode? template, string[] tokens)
    {
        var decoder = new JsonObject();
        for (int i = 0; i < tokens.Length; i++) decoder[$"{100 + i}"] = new JsonObject { ["content"] = tokens[i], ["special"] = true };
        var config = new JsonObject { ["added_tokens_decoder"] = decoder };
        if (template is not null) config["chat_template"] = template.DeepClone();
        string file = Path.Combine(folder, ChatTemplateDetector.ConfigFileName);
        File.WriteAllText(file, config.ToJsonString());
        return file;
    }
}
