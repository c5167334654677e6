namespace FinQLoRA.Data.Tokenization;

/// <summary>Text ↔ token ids for one model, with its special ids. Special tokens written in the text
/// (e.g. <c>&lt;|eot_id|&gt;</c>) map to their ids, as Hugging Face tokenizers do.</summary>
public interface ITextTokenizer
{
    int VocabSize { get; }
    int? BosId { get; }
    /// <summary>Ids that end generation (EOS, and for Llama 3 also <c>&lt;|eot_id|&gt;</c>/<c>&lt;|eom_id|&gt;</c>).</summary>
    IReadOnlyList<int> EosIds { get; }
    /// <summary>Id used for padding; Llama has none, so an EOS id is used (as FinLoRA does), never attended to.</summary>
    int PadId { get; }
    /// <summary>Whether the model's tokenizer adds BOS by default (Hugging Face's add_special_tokens=True).</summary>
    bool AddsBosByDefault { get; }

    int[] Encode(string text, bool addBos);
    string Decode(IEnumerable<int> ids, bool skipSpecialTokens = true);
    int? TokenToId(string token);
}
