using FinQLoRA.Loading;
using System.Text.Json.Nodes;
using FinQLoRA.Data.Chat;
using FinQLoRA.Models;
using FinQLoRA.Server;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Serving;

/// <summary>
/// A tiny seeded random Llama with the seeded tokenizer's Llama 3 chat variant (so that it has Llama 3's chat format), written to a temporary
/// folder with the tokenizer files beside it, served on a free loopback port behind an API key; plus what
/// <c>finqlora generate --chat --json</c> prints for <see cref="Questions"/>.
/// </summary>
public sealed class ChatServeFixture : ServerFixture
{
    public const string ModelName = "tiny-llama3";
    public const string Key = "sk-test-key";
    public const int MaxTokens = 12;
    public static readonly string[] Questions = ["What is a bond?", "Name a stock index.", "Is cash an asset?"];

    public string ModelDir => Path.Combine(Dir, "model");
    public ChatFormat Format => Host.ChatFormat ?? throw new InvalidOperationException("no chat format");
    /// <summary>generate --chat's answer to each question (text as it reads after the prompt) and its token count.</summary>
    public List<(string Text, int[] PromptIds, int Tokens)> Reference { get; } = [];

    public override async Task InitializeAsync()
    {
        SeededChatLlama.Write(ModelDir, seed: 5);

        foreach (string q in Questions)
        {
            var (code, output) = CliProcess.Run(TimeSpan.FromMinutes(2), "generate", "--model", ModelDir, "--dtype", "f32", "--chat", "--prompt", q,
                "--max-new-tokens", $"{MaxTokens}", "--json");
            Assert.True(code == 0, output);
            var g = Generated.Parse(JsonNode.Parse(output.Split('\n').First(l => l.StartsWith('{')))!);
            Reference.Add((g.Text, g.PromptIds, g.Tokens));
        }

        await StartAsync(new ServerHostOptions
        {
            ModelPath = ModelDir, Load = new ModelLoadOptions { DType = ScalarType.Float32 },
            Server = new ServerOptions { ServedModelName = ModelName, Port = 0, ApiKey = Key },
            MaxBatch = 4, MaxModelLen = 256,
        });
    }
}
