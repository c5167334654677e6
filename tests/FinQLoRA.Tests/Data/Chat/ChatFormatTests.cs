using FinQLoRA.Data.Chat;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Data.Chat;

/// <summary>The chat format of a loaded tokenizer (generate --chat, serve, the IChatClient): the template and the token
/// that ends a reply.</summary>
public sealed class ChatFormatTests
{
    [Fact]
    public void ChatFormatIsChatMlWhenTheConfigSaysSoLlama3ByItsTokensAndNoneOtherwise()
    {
        using var temp = new TempFolder();
        string dir = temp.Path;
        string config = Path.Combine(dir, "tokenizer_config.json");
        File.WriteAllText(config, "{\"chat_template\": \"{% for m in messages %}<|im_start|>{{ m.role }}\\n{{ m.content }}<|im_end|>\\n{% endfor %}\"}");
        var chatMl = ChatFormat.Detect(new SpecialTokensTokenizer(new() { ["<|im_start|>"] = 5, ["<|im_end|>"] = 6 }), config)!;
        Assert.Equal("chatml", chatMl.Name);
        Assert.Equal([6], chatMl.StopIds);
        Assert.Equal("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
            chatMl.Render([new ChatTurn("system", "Be brief."), new ChatTurn("user", "Hi")]));

        var llama3 = ChatFormat.Detect(new SpecialTokensTokenizer(new() { ["<|start_header_id|>"] = 1, ["<|end_header_id|>"] = 2, ["<|eot_id|>"] = 3 }), null)!;
        Assert.Equal("llama3", llama3.Name);
        Assert.Equal([3], llama3.StopIds);
        Assert.Equal(ChatTemplate.RequestPrompt(ChatTemplateKind.Llama3, [new("user", "Hi")]), llama3.Render([new ChatTurn("user", "Hi")]));

        Assert.Null(ChatFormat.Detect(new SpecialTokensTokenizer([]), config)); // ChatML named but its tokens missing
        Assert.Null(ChatFormat.Detect(new SpecialTokensTokenizer(new() { ["<|im_start|>"] = 5, ["<|im_end|>"] = 6 }), null));
    }
}
