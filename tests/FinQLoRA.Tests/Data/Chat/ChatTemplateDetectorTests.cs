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
            Assert.Contains(template is null ? "has no chat_template" : "neither ChatML nor Llama 3's", e.Message);
            Assert.Contains("--chat-template", FinQLoRA.Cli.FlagNames.Render(e));
        }
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
