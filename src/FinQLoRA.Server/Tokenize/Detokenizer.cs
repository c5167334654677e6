using System.Text;
using FinQLoRA.Data.Tokenization;

namespace FinQLoRA.Server.Tokenize;

/// <summary>Ids to text with the special tokens written out, as Hugging Face's <c>decode</c> (which vLLM's
/// /detokenize calls) gives them: <c>&lt;|begin_of_text|&gt;Hello&lt;|eot_id|&gt;</c>. The tokenizers here leave added
/// tokens out whatever they are asked, so the ids are cut at each special token, every run between them is decoded as
/// the tokenizer decodes it, and the special tokens' texts are put back between the runs.</summary>
internal static class Detokenizer
{
    public static string Decode(ITextTokenizer tokenizer, IReadOnlyList<int> ids)
    {
        if (tokenizer is not LlamaTokenizer llama) return tokenizer.Decode(ids, skipSpecialTokens: false);
        var special = llama.SpecialTokens.ToDictionary(p => p.Value, p => p.Key);
        var text = new StringBuilder();
        var run = new List<int>();
        foreach (int id in ids)
        {
            if (!special.TryGetValue(id, out var name))
            {
                run.Add(id);
                continue;
            }
            Flush();
            text.Append(name);
        }
        Flush();
        return text.ToString();

        void Flush()
        {
            if (run.Count == 0) return;
            text.Append(tokenizer.Decode(run, skipSpecialTokens: false));
            run.Clear();
        }
    }
}
