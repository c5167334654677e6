using System.Text.Json.Nodes;
using FinQLoRA.Data.Chat;
using FinQLoRA.Data.Formats;
using FinQLoRA.Data.Sft;
using FinQLoRA.Data.Tokenization;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Data.Formats;

/// <summary>Alpaca and chat data besides context/target; chat loss covers exactly the assistant turns.</summary>
public sealed class TrainingDataFormatsTests
{
    private static ChatTemplateKind NoChat() => throw new InvalidOperationException("the template must not be asked for");

    [SharedFact]
    public void ChatLossCoversExactlyTheAssistantTokensWithTheLlama31Tokenizer()
    {
        string tokenizerFolder = Shared.File("models/llama-3.1-tokenizer");
        var tokenizer = TokenizerLoader.FromHuggingFace(tokenizerFolder);
        Assert.Equal(ChatTemplateKind.Llama3, ChatTemplateDetector.FromModel(tokenizerFolder));
        var messages = new List<ChatTurn>
        {
            new("system", "You are a financial analyst."), new("user", "Sentiment of: Acme beat estimates."),
            new("assistant", "positive"), new("user", "And: Globex cut its dividend."), new("assistant", "negative, clearly"),
        };
        var tokenized = new SftTokenizer(tokenizer, 4096).Tokenize(ChatTemplate.Render(ChatTemplateKind.Llama3, messages));

        // encoding segment by segment is encoding the whole rendered conversation
        string whole = "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a financial analyst.<|eot_id|>" +
                       "<|start_header_id|>user<|end_header_id|>\n\nSentiment of: Acme beat estimates.<|eot_id|>" +
                       "<|start_header_id|>assistant<|end_header_id|>\n\npositive<|eot_id|>" +
                       "<|start_header_id|>user<|end_header_id|>\n\nAnd: Globex cut its dividend.<|eot_id|>" +
                       "<|start_header_id|>assistant<|end_header_id|>\n\nnegative, clearly<|eot_id|>";
        Assert.Equal(tokenizer.Encode(whole, addBos: false), tokenized.InputIds);

        // token by token: a label is the token itself exactly on the two replies and their <|eot_id|>, -100 elsewhere
        int eot = tokenizer.TokenToId("<|eot_id|>")!.Value, header = tokenizer.TokenToId("<|end_header_id|>")!.Value;
        int[] reply1 = [.. tokenizer.Encode("positive", false), eot], reply2 = [.. tokenizer.Encode("negative, clearly", false), eot];
        var expected = Enumerable.Repeat(TokenizedExample.IgnoreIndex, tokenized.Length).ToArray();
        int[] ids = tokenized.InputIds;
        var assistantHeaders = Enumerable.Range(0, ids.Length).Where(i => ids[i] == header && tokenizer.Decode([ids[i - 1]], false) == "assistant").ToList();
        Assert.Equal(2, assistantHeaders.Count);
        foreach (var (start, reply) in new[] { (assistantHeaders[0] + 2, reply1), (assistantHeaders[1] + 2, reply2) }) // header, then "\n\n"
        {
            Assert.Equal(reply, ids[start..(start + reply.Length)]);
            for (int k = 0; k < reply.Length; k++) expected[start + k] = reply[k];
        }
        Assert.Equal(expected, tokenized.Labels);
    }

    [Fact]
    public void AlpacaAndChatAreRecognisedByTheirFields()
    {
        using var dir = new TempFolder();
        string alpaca = Path.Combine(dir.Path, "alpaca.jsonl");
        File.WriteAllLines(alpaca, [
            new JsonObject { ["instruction"] = "Classify the sentiment.", ["input"] = "Acme beat estimates.", ["output"] = "positive" }.ToJsonString(),
            new JsonObject { ["instruction"] = "Name a bond rating agency.", ["input"] = "", ["output"] = "Moody's" }.ToJsonString()]);
        var a = TrainingData.Read(alpaca, null, NoChat);
        Assert.Equal(DataFormat.Alpaca, a.Format);
        Assert.Equal(TrainingData.AlpacaPrompt("Classify the sentiment.", "Acme beat estimates."), a.Records[0].Answer.Context);
        Assert.Contains("### Input:", a.Records[0].Answer.Context);
        Assert.DoesNotContain("### Input:", a.Records[1].Answer.Context);
        Assert.Equal("Moody's", a.Records[1].Answer.Target);

        string chat = Path.Combine(dir.Path, "chat.jsonl");
        File.WriteAllText(chat, "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"},{\"role\":\"assistant\",\"content\":\"Hello\"}]}\n");
        var c = TrainingData.Read(chat, null, () => ChatTemplateKind.ChatMl);
        Assert.Equal(DataFormat.Chat, c.Format);
        Assert.Equal("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", c.Records[0].Answer.Context);
        Assert.Equal(["Hello<|im_end|>"], c.Records[0].Segments!.Where(s => s.Trained).Select(s => s.Text));

        string unknown = Path.Combine(dir.Path, "unknown.jsonl");
        File.WriteAllText(unknown, "{\"question\":\"q\",\"answer\":\"a\"}\n");
        Assert.Contains("--data-format", FinQLoRA.Cli.FlagNames.Render(Assert.Throws<UserInputException>(() => TrainingData.Read(unknown, null, NoChat))));
        string noReply = Path.Combine(dir.Path, "noreply.jsonl");
        File.WriteAllText(noReply, "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}\n");
        Assert.Contains("no assistant turn", Assert.Throws<UserInputException>(() => TrainingData.Read(noReply, null, () => ChatTemplateKind.None)).Message);
    }

    [Fact]
    public void AConversationTheTemplateRaisesOnIsRefusedWithItsLine()
    {
        using var dir = new TempFolder();
        string chat = dir.Write("chat.jsonl",
            "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"},{\"role\":\"assistant\",\"content\":\"Hello\"}]}\n" +
            "{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\",\"content\":\"Hi\"},{\"role\":\"assistant\",\"content\":\"Hello\"}]}\n");
        var e = Assert.Throws<UserInputException>(() => TrainingData.Read(chat, null, () => ChatTemplateKind.Gemma2));
        Assert.StartsWith($"{chat}:2: the gemma2 chat template has no system role", e.Message);
        Assert.Equal(2, TrainingData.Read(chat, null, () => ChatTemplateKind.Gemma3).Records.Count);
    }

    [Fact]
    public void AnUnknownChatTemplateIsNamed()
    {
        using var dir = new TempFolder();
        File.WriteAllText(Path.Combine(dir.Path, "tokenizer_config.json"), "{\"chat_template\": \"{% for m in messages %}[INST] {{ m.content }} [/INST]{% endfor %}\"}");
        var e = Assert.Throws<UserInputException>(() => ChatTemplateDetector.FromModel(dir.Path));
        Assert.Contains("[INST]", e.Message);
        Assert.Contains("--chat-template", FinQLoRA.Cli.FlagNames.Render(e));
    }

    [Fact]
    public async Task ParquetDataIsReadWithItsFormatGuessed()
    {
        using var dir = new TempFolder();
        string file = Path.Combine(dir.Path, "train.parquet");
        var rows = new List<AlpacaRow> { new("Classify.", "Acme beat estimates.", "positive"), new("Summarise.", "", "Acme did well.") };
        await Parquet.Serialization.ParquetSerializer.SerializeAsync(rows, file);
        var loaded = TrainingData.Read(file, null, NoChat);
        Assert.Equal(DataFormat.Alpaca, loaded.Format);
        Assert.Equal(["positive", "Acme did well."], loaded.Records.Select(r => r.Answer.Target));
    }

    [Fact]
    public void TrainTakesChatData()
    {
        using var dir = new TempFolder();
        string data = Path.Combine(dir.Path, "chat.jsonl");
        File.WriteAllLines(data, Enumerable.Range(0, 8).Select(i =>
            $"{{\"messages\":[{{\"role\":\"user\",\"content\":\"Sentiment of headline {i}?\"}},{{\"role\":\"assistant\",\"content\":\"{(i % 2 == 0 ? "positive" : "negative")}\"}}]}}"));
        var r = CliProcess.RunSeparately(TimeSpan.FromMinutes(3), "train", "--model", SeededLlama.Folder, "--data", data,
            "--out", Path.Combine(dir.Path, "run"), "--chat-template", "none", "--max-steps", "2", "--warmup-steps", "0", "--batch-size", "4", "--dtype", "f32");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("8 chat records", r.Stderr);
    }

    /// <summary>A Hub data set's row in Alpaca's columns.</summary>
    public sealed record AlpacaRow(
        [property: System.Text.Json.Serialization.JsonPropertyName("instruction")] string Instruction,
        [property: System.Text.Json.Serialization.JsonPropertyName("input")] string Input,
        [property: System.Text.Json.Serialization.JsonPropertyName("output")] string Output);
}

/// <summary>data stats on any format: the format named, the share of tokens with loss, the prompts train would cut.</summary>
public sealed class DataStatsFormatsTests
{
    [Fact]
    public void StatsNameTheFormatTheLossShareAndTheCuts()
    {
        using var dir = new TempFolder();
        string file = Path.Combine(dir.Path, "alpaca.jsonl");
        File.WriteAllLines(file, [
            "{\"instruction\":\"Classify the sentiment.\",\"input\":\"Acme beat estimates.\",\"output\":\"positive\"}",
            "{\"instruction\":\"Classify the sentiment.\",\"input\":\"" + string.Join(' ', Enumerable.Repeat("Globex cut its dividend again.", 40)) + "\",\"output\":\"negative\"}"]);
        var r = CliProcess.RunSeparately(TimeSpan.FromMinutes(2), "data", "stats", file, "--tokenizer", SeededLlama.Folder, "--max-seq-len", "400");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("2 alpaca examples", r.Stdout);
        Assert.Matches(@"tokens: \d+ in all, \d+ carry loss \(\d+\.\d%\); at max_seq_len 400: 1 prompts would be cut, 0 targets", r.Stdout);
    }
}
