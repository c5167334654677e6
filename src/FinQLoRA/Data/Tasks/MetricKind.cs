namespace FinQLoRA.Data.Tasks;

/// <summary>How a task's generated outputs are scored (the evaluation layer's TaskScorer applies it).</summary>
public enum MetricKind
{
    /// <summary>The earliest task label in the output is the prediction; accuracy and weighted F1 over labels.</summary>
    Classification,
    /// <summary>The trimmed output must equal the trimmed target (XBRL tags, formulas over tags).</summary>
    ExactMatch,
    /// <summary>Numbers compare by value (16116000000 = 16116000000.0), other tokens exactly.</summary>
    NumericMatch,
    /// <summary>Comma-separated tag lists compared element by element (FiNER, FNXL batched prompts).</summary>
    TagList,
    /// <summary>Free text: SQuAD-style token F1 against the reference, plus normalised exact match.</summary>
    TextSimilarity,
}
