using System.Text.Json.Nodes;
using FinQLoRA.Data.Chat;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Data.Chat;

/// <summary>
/// Every template in tests/fixtures/chat: a model's published chat_template and special tokens, and Jinja2's renders
/// of it (make_reference.py renders them as transformers' apply_chat_template does; see the README there). The rule
/// must detect the kind the fixture names, from the model folder and from a loaded tokenizer alike, and our renders
/// must equal Jinja2's text exactly (generation prompts for generate and serve, the no-prompt text for training), or
/// refuse where Jinja2 raised. Fixtures of variants we do not render must be refused in one line naming the variant.
/// </summary>
public sealed class ChatTemplateFixtureTests
{
    private static string Folder => Path.Combine(Shared.RepoRoot, "tests", "fixtures", "chat");

    public static TheoryData<string> Rendered => [.. Names(f => f["kind"] is not null)];
    public static TheoryData<string> Refused => [.. Names(f => f["kind"] is null)];

    [Theory]
    [MemberData(nameof(Rendered))]
    public void DetectionGivesTheKindAndRendersEqualJinja(string name)
    {
        var fixture = Load(name);
        var kind = ChatTemplate.Parse(fixture["kind"]!.GetValue<string>(), name);
        using var dir = new TempFolder();
        string config = WriteConfig(dir, fixture);
        Assert.Equal(kind, ChatTemplateDetector.FromModel(dir.Path));
        var tokens = Tokens(fixture);
        var format = ChatFormat.Detect(new SpecialTokensTokenizer(tokens), config);
        Assert.Equal(kind, format?.Kind);
        Assert.Equal([tokens[ChatTemplate.EndOfTurn(kind)!]], format!.StopIds);

        int compared = 0;
        foreach (var r in fixture["renders"]!.AsArray())
        {
            var messages = r!["messages"]!.AsArray().Select(m => new ChatTurn(m!["role"]!.GetValue<string>(), m["content"]!.GetValue<string>())).ToList();
            bool generation = r["add_generation_prompt"]!.GetValue<bool>();
            string what = $"{name}: [{string.Join(", ", messages.Select(m => m.Role))}]{(generation ? " + generation prompt" : "")}";
            string Ours() => generation ? ChatTemplate.Prompt(kind, messages) : string.Concat(ChatTemplate.Render(kind, messages).Select(s => s.Text));
            if (r["error"] is { } error)
            {
                var e = Assert.Throws<UserInputException>(Ours);
                Assert.DoesNotContain('\n', e.Message);
                continue;
            }
            string jinja = r["text"]!.GetValue<string>();
            if (name == "qwen3") jinja = jinja.Replace("<think>\n\n</think>\n\n", ""); // kept as given: see ChatMlTemplate
            Assert.True(jinja == Ours(), $"{what}\n jinja: {Show(jinja)}\n ours:  {Show(Ours())}");
            compared++;
        }
        Assert.True(compared >= 2, $"{name}: only {compared} renders compared");
    }

    [Fact]
    public void Qwen3AddsAnEmptyThinkBlockToAFinalReplyWhichTrainingDataDoesNot()
    {
        // the one place we part from a template on purpose (ChatMlTemplate's remarks): pinned so it stays a choice
        var r = Load("qwen3")["renders"]!.AsArray().Where(r => r!["text"]?.GetValue<string>().Contains("<think>\n\n</think>\n\n") == true).ToList();
        Assert.Equal(2, r.Count); // the two training renders that end with a reply after the last user message
        var segments = ChatTemplate.Render(ChatTemplateKind.ChatMl, [new("user", "What is EPS?"), new("assistant", "Earnings per share.")]);
        Assert.Equal(["Earnings per share.<|im_end|>"], segments.Where(s => s.Trained).Select(s => s.Text));
    }

    [Theory]
    [MemberData(nameof(Refused))]
    public void AVariantWeDoNotRenderIsRefusedByName(string name)
    {
        var fixture = Load(name);
        using var dir = new TempFolder();
        string config = WriteConfig(dir, fixture);
        string variant = fixture["refusal"]!.GetValue<string>();
        var e = Assert.Throws<UserInputException>(() => ChatTemplateDetector.FromModel(dir.Path));
        Assert.Contains(variant, e.Message);
        Assert.Contains("we do not render", e.Message);
        Assert.StartsWith(config, e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Contains("--chat-template", FinQLoRA.Cli.FlagNames.Render(e));
        var loaded = Assert.Throws<UserInputException>(() => ChatFormat.Detect(new SpecialTokensTokenizer(Tokens(fixture)), config));
        Assert.Equal(e.Message, loaded.Message);
    }

    [Fact]
    public void EveryFixtureIsTested()
    {
        Assert.Equal(Directory.GetFiles(Folder, "*.json").Length, Rendered.Count + Refused.Count);
        // every kind but none has a published template here
        var kinds = Names(f => f["kind"] is not null).Select(n => ChatTemplate.Parse(Load(n)["kind"]!.GetValue<string>(), n)).ToHashSet();
        Assert.Equal(Enum.GetValues<ChatTemplateKind>().Where(k => k != ChatTemplateKind.None).Order(), kinds.Order());
    }

    private static IEnumerable<string> Names(Func<JsonNode, bool> which) =>
        Directory.GetFiles(Folder, "*.json").Order(StringComparer.Ordinal)
            .Select(f => Path.GetFileNameWithoutExtension(f)).Where(n => which(Load(n)));

    private static JsonNode Load(string name) => JsonNode.Parse(File.ReadAllText(Path.Combine(Folder, name + ".json")))!;

    private static string WriteConfig(TempFolder dir, JsonNode fixture) =>
        dir.Write(ChatTemplateDetector.ConfigFileName, fixture["tokenizer_config"]!.ToJsonString());

    private static Dictionary<string, int> Tokens(JsonNode fixture) =>
        fixture["tokenizer_config"]!["added_tokens_decoder"]!.AsObject().ToDictionary(p => p.Value!["content"]!.GetValue<string>(), p => int.Parse(p.Key));

    private static string Show(string s) => s.Replace("\n", "\\n");
}
