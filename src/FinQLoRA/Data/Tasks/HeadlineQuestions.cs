namespace FinQLoRA.Data.Tasks;

/// <summary>
/// The nine yes/no questions FinGPT's headline set asks about each gold-news headline, in FinGPT's wording
/// ("Does the news headline talk about {topic}?" with topics from its headline topic map, and
/// "Does the news headline compare gold with any other asset?"), each followed by
/// "Please choose an answer from {Yes/No}." and answered "Yes"/"No".
///
/// The gold-news TSV here (Sinha &amp; Khandait's Kaggle release) has no "price or not", past/future price or
/// past/future news columns, only Past/Future Information and a price sentiment. The answers are derived:
/// the headline talks about price iff Price Sentiment is not "none"; "price in the past/future" is price AND
/// Past/Future Information; "a general event (apart from prices) in the past/future" is NOT price AND
/// Past/Future Information. Direction up/constant/down and asset comparison are read directly.
/// </summary>
public static class HeadlineQuestions
{
    public static IReadOnlyList<string> All { get; } =
    [
        "Does the news headline talk about price?",
        "Does the news headline talk about price going up?",
        "Does the news headline talk about price staying constant?",
        "Does the news headline talk about price going down?",
        "Does the news headline talk about price in the past?",
        "Does the news headline talk about price in the future?",
        "Does the news headline talk about a general event (apart from prices) in the past?",
        "Does the news headline talk about a general event (apart from prices) in the future?",
        "Does the news headline compare gold with any other asset?",
    ];

    /// <summary>The question and the answers offered: "… Please choose an answer from {Yes/No}."</summary>
    public static string Instruction(string question, IReadOnlyList<string> answers) => $"{question} Please choose an answer from {{{string.Join('/', answers)}}}.";
}
