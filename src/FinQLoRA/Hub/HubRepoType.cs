namespace FinQLoRA.Hub;

/// <summary>The two kinds of Hugging Face Hub repository FinQLoRA downloads from; they differ only in URL prefixes.</summary>
public enum HubRepoType
{
    Model,
    Dataset,
}
