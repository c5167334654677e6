using FinQLoRA.Data.Tokenization;
using FinQLoRA.Models;

namespace FinQLoRA.Loading;

/// <summary>A loaded model with its tokenizer and the path it came from (<see cref="ModelLoading.Load"/>).</summary>
public sealed record ModelBundle(DecoderModel Model, ITextTokenizer Tokenizer, ModelPath Source) : IDisposable
{
    /// <summary>The path as given.</summary>
    public string Path => Source.Path;

    /// <summary>Positions a prompt and its continuation may fill (config.json's max_position_embeddings).</summary>
    public int ContextLength => Model.Config.MaxPositionEmbeddings;

    public void Dispose() => Model.Dispose();
}
