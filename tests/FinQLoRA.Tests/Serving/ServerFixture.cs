using System.Text.Json;
using System.Text.Json.Nodes;
using FinQLoRA.Data.Tokenization;
using FinQLoRA.Models;
using FinQLoRA.Server;
using FinQLoRA.Serving;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Serving;

/// <summary>
/// What the server fixtures share: a temporary folder, the <see cref="ServerHost"/> that <c>finqlora serve</c> builds
/// (opened and started over the options a fixture gives) with its parts, and the reading of the reference the served
/// answers are compared with, one line of <c>finqlora generate --json</c>.
/// </summary>
public abstract class ServerFixture : IAsyncLifetime
{
    private readonly TempFolder _temp = new();
    public string Dir => _temp.Path;
    /// <summary>What <c>finqlora serve</c> builds, over the same options.</summary>
    public ServerHost Host { get; private set; } = null!;
    public ITextTokenizer Tokenizer => Host.Tokenizer;
    public DecoderModel Model => Host.Model;
    public ServingEngine Engine => Host.Engine;
    public OpenAiServer Server => Host.Server;
    public Uri Url => Server.Url!;

    public abstract Task InitializeAsync();

    protected async Task StartAsync(ServerHostOptions options)
    {
        Host = ServerHost.Open(options);
        await Host.StartAsync();
    }

    public virtual async Task DisposeAsync()
    {
        if (Host is not null)
        {
            await Host.StopAsync();
            await Host.DisposeAsync();
        }
        _temp.Dispose();
    }

    /// <summary>One answer of <c>generate --json</c>: its ids, its text (as it reads after the prompt), its finish
    /// reason and the tokens the server counts for it (the stop id it generated included).</summary>
    protected sealed record Generated(int[] PromptIds, int[] OutputIds, string Text, string Finish, int Tokens)
    {
        public static Generated Parse(JsonNode r)
        {
            int[] Ids(string key) => r[key]!.AsArray().Select(x => x!.GetValue<int>()).ToArray();
            var output = Ids("output_ids");
            bool stopId = r["stop_reason"]?.GetValueKind() == JsonValueKind.Number; // a stop id (EOS) ended it
            return new(Ids("prompt_ids"), output, r["text"]!.GetValue<string>(), r["finish_reason"]!.GetValue<string>(),
                output.Length + (stopId ? 1 : 0));
        }
    }
}
