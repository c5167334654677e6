using FinQLoRA.Adapters;
using FinQLoRA.Data.Tokenization;
using FinQLoRA.Serving;
using FinQLoRA.Tests.Adapters;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Serving;

/// <summary>The gathered batched LoRA delta against <see cref="LoraLinear"/>'s one-adapter forward, and chat format detection.</summary>
public sealed class StackedLoraTests
{
    [Fact]
    public void OneMixedForwardMatchesEachRowWithItsAdapterActive()
    {
        using var model = ServingEngineTests.ModelWithAdapters(); // a: LoRA r4, b: LoRA r8, d: DoRA r2
        string?[] order = [null, .. LoraInjector.AdapterNames(model)];
        var selection = new LoraRowSelection();
        var stacks = LoraInjector.Wrapped(model).Select(w => w.Lora.Stacked = StackedLora.Build(w.Lora, order, selection)).ToList();
        try
        {
            using var noGrad = no_grad();
            using var ids = LoraTestKit.Ids();                                   // [2, 6]
            using var batch = cat([ids, ids], 0);                               // four rows: base, a, b, d
            string?[] rowAdapters = [null, "a", "b", "d"];
            selection.Rows = tensor(rowAdapters.Select(a => (long)Array.IndexOf(order, a)).ToArray());
            using var mixed = model.Forward(batch);
            selection.Rows.Dispose();
            selection.Rows = null;
            for (int r = 0; r < 4; r++)
            {
                LoraInjector.SetActiveAdapter(model, rowAdapters[r]);
                using var alone = model.Forward(batch.narrow(0, r, 1));
                using var row = mixed.narrow(0, r, 1);
                Assert.True(TensorAssert.RelativeMaxDiff(row, alone) < 1e-5, $"row {r} ({rowAdapters[r] ?? "base"}) differs by {TensorAssert.RelativeMaxDiff(row, alone)}");
            }
            LoraInjector.SetActiveAdapter(model, null);
            using var plain = model.Forward(batch.narrow(0, 1, 1));
            using var withA = mixed.narrow(0, 1, 1);
            Assert.True(TensorAssert.MaxDiff(withA, plain) > 1e-3); // the adapter does change the logits
        }
        finally
        {
            foreach (var w in LoraInjector.Wrapped(model)) w.Lora.Stacked = null;
            foreach (var s in stacks) s.Dispose();
        }
    }

    private sealed class FakeTokenizer(Dictionary<string, int> specials) : ITextTokenizer
    {
        public int VocabSize => 100;
        public int? BosId => null;
        public IReadOnlyList<int> EosIds => [0];
        public int PadId => 0;
        public bool AddsBosByDefault => false;
        public int[] Encode(string text, bool addBos) => [];
        public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = true) => "";
        public int? TokenToId(string token) => specials.TryGetValue(token, out int id) ? id : null;
    }

    [Fact]
    public void ChatFormatIsChatMlWhenTheConfigSaysSoLlama3ByItsTokensAndNoneOtherwise()
    {
        using var temp = new TempFolder();
        string dir = temp.Path;
        string config = Path.Combine(dir, "tokenizer_config.json");
        File.WriteAllText(config, "{\"chat_template\": \"{% for m in messages %}<|im_start|>{{ m.role }}\\n{{ m.content }}<|im_end|>\\n{% endfor %}\"}");
        var chatMl = ChatFormat.Detect(new FakeTokenizer(new() { ["<|im_start|>"] = 5, ["<|im_end|>"] = 6 }), config)!;
        Assert.Equal("chatml", chatMl.Name);
        Assert.Equal([6], chatMl.StopIds);
        Assert.Equal("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
            chatMl.Render([new ChatTurn("system", "Be brief."), new ChatTurn("user", "Hi")]));

        var llama3 = ChatFormat.Detect(new FakeTokenizer(new() { ["<|start_header_id|>"] = 1, ["<|end_header_id|>"] = 2, ["<|eot_id|>"] = 3 }), null)!;
        Assert.Equal("llama3", llama3.Name);
        Assert.Equal([3], llama3.StopIds);
        Assert.Equal(Llama3ChatTemplate.Format([new("user", "Hi")]), llama3.Render([new ChatTurn("user", "Hi")]));

        Assert.Null(ChatFormat.Detect(new FakeTokenizer([]), config)); // ChatML named but its tokens missing
        Assert.Null(ChatFormat.Detect(new FakeTokenizer(new() { ["<|im_start|>"] = 5, ["<|im_end|>"] = 6 }), null));
    }
}
