using FinQLoRA.Evaluation;
using FinQLoRA.Tests.Support;
using Xunit;

namespace FinQLoRA.Tests.Evaluation;

/// <summary>Exact, numeric, tag-list and free-text metrics on hand-made outputs; arithmetic in the comments.</summary>
public sealed class GenerativeScoringTests
{
    [Fact]
    public void Xbrl_tags_exact_match_after_trimming()
    {
        var r = TaskScorer.Score("xbrl_tags",
        [
            ("us-gaap:Assets / us-gaap:Equity", "  us-gaap:Assets / us-gaap:Equity\n"), // correct
            ("us-gaap:Assets / us-gaap:Equity", "us-gaap:assets / us-gaap:equity"),   // wrong (case matters)
        ]);
        // accuracy 1/2; the only true class has support 2, TP 1, FP 0, FN 1 -> F1 2/3, weighted 2/3
        Assert.Equal(0.5, r.Accuracy, 12);
        Assert.Equal(2.0 / 3, r.WeightedF1!.Value, 12);
    }

    [Fact]
    public void Numeric_match_compares_numbers_by_value()
    {
        var r = TaskScorer.Score("xbrl_values",
        [
            ("16116000000", "16116000000.0"),                                            // correct
            ("2297.17", "The NPV is $2,297.17."),                                         // correct: first number
            ("(13723000000 / 110225000000) * 100", "(13723000000.0/110225000000)*100"),   // correct: same formula
            ("15092.44", "15092.4"),                                                     // wrong
            ("1832", ""),                                                                // unmatched
        ]);
        // accuracy 3/5 = 0.6. Each target is its own class with support 1: three with F1 1, two with F1 0;
        // weighted = 3/5 = 0.6
        Assert.Equal(0.6, r.Accuracy, 12);
        Assert.Equal(0.6, r.WeightedF1!.Value, 12);
        Assert.Equal(1, r.Unmatched);
        Assert.Equal("(13723000000/110225000000)*100", NumericAnswer.Canonical(" ( 13,723,000,000.00 / 110225000000 ) * 100 "));
        Assert.Equal("-0.5", NumericAnswer.Canonical("-.50"));
    }

    [Fact]
    public void Tag_lists_are_scored_element_by_element()
    {
        var r = TaskScorer.Score("finer",
        [
            ("A,B,C", "A, us-gaap:B"),   // padded: (A,A) ok, (B,B) ok, (C,<unmatched>) wrong
            ("A,D", "D,A,E"),            // truncated: (A,D) wrong, (D,A) wrong
        ]);
        // elements: truth [A,B,C,A,D], predicted [A,B,-,D,A]; accuracy 2/5 = 0.4
        //   A: support 2, TP 1, FP 1, FN 1 -> 2/4 = 0.5;  B: support 1, TP 1 -> 1;  C: 0;  D: TP 0, FP 1, FN 1 -> 0
        //   weighted = (2*0.5 + 1*1 + 0 + 0) / 5 = 0.4
        Assert.Equal(0.4, r.Accuracy, 12);
        Assert.Equal(0.4, r.WeightedF1!.Value, 12);
        Assert.Equal(2, r.N);
        Assert.Equal(1, r.Unmatched);
    }

    [Fact]
    public void Free_text_uses_squad_token_f1()
    {
        // reference tokens (articles and punctuation dropped): cash outflow from advancing money (5)
        // candidate tokens: cash outflow for money (4); common 3 -> P 3/4, R 3/5, F1 = 2*0.45/1.35 = 2/3
        Assert.Equal(2.0 / 3, TokenF1.Compute("The cash outflow from advancing money.", "cash outflow for money"), 12);
        var r = TaskScorer.Score("xbrl_term",
        [
            ("The cash outflow from advancing money.", "cash outflow for money"), // F1 2/3, not exact
            ("Prepaid taxes.", "prepaid TAXES"),                                 // F1 1, exact after normalising
            ("Anything.", ""),                                                   // F1 0, empty output
        ]);
        // mean F1 = (2/3 + 1 + 0) / 3 = 5/9; exact match 1/3
        Assert.Equal(5.0 / 9, r.TokenF1!.Value, 12);
        Assert.Equal(1.0 / 3, r.Accuracy, 12);
        Assert.Null(r.WeightedF1);
        Assert.Equal(1, r.Unmatched);
    }

    [Fact]
    public void Score_json_has_the_documented_keys()
    {
        string json = System.Text.Json.JsonSerializer.Serialize(TaskScorer.Score("fpb", [("neutral", "neutral")]));
        Assert.Equal("{\"task\":\"fpb\",\"n\":1,\"accuracy\":1,\"weighted_f1\":1,\"unmatched\":0}", json);
    }

    [Fact]
    public void Prediction_file_round_trips_and_reports_bad_lines()
    {
        using var dir = new TempFolder();
        string path = dir.PathOf("p.jsonl");
        PredictionFile.Write(path, [new Prediction("c", "positive", "Positive!")]);
        Assert.Equal(new Prediction("c", "positive", "Positive!"), PredictionFile.Read(path).Single());
        string bad = dir.Write("bad.jsonl", "{\"target\": \"x\"}\n");
        Assert.StartsWith($"{bad}:1: missing string field \"output\"", Assert.Throws<UserInputException>(() => PredictionFile.Read(bad)).Message);
    }
}
