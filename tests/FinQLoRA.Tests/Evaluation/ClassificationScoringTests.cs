using FinQLoRA.Evaluation;
using Xunit;

namespace FinQLoRA.Tests.Evaluation;

/// <summary>Hand-made messy outputs, expected scores computed by hand (arithmetic in the comments).</summary>
public sealed class ClassificationScoringTests
{
    [Fact]
    public void Fpb_messy_outputs()
    {
        (string, string)[] pairs =
        [
            ("positive", "Positive"),                         // -> positive  correct
            ("negative", "The sentiment is negative."),       // -> negative  correct
            ("neutral", "neutral or positive"),               // -> neutral   correct (earliest label)
            ("positive", "negative, not positive"),           // -> negative  wrong
            ("neutral", ""),                                  // -> unmatched wrong
            ("negative", "I think it is NEGATIVE"),           // -> negative  correct
            ("positive", "positively bullish"),               // -> unmatched wrong ("positive" is not a whole word here)
            ("neutral", "NEUTRAL"),                           // -> neutral   correct
        ];
        var r = TaskScorer.Score("fpb", pairs);
        // accuracy = 5 / 8 = 0.625
        Assert.Equal(0.625, r.Accuracy, 12);
        // Per class, F1 = 2TP / (2TP + FP + FN):
        //   positive: support 3, TP 1, FP 0, FN 2 -> 2/4 = 0.5
        //   negative: support 2, TP 2, FP 1 (item 4), FN 0 -> 4/5 = 0.8
        //   neutral:  support 3, TP 2, FP 0, FN 1 (item 5) -> 4/5 = 0.8
        //   <unmatched>: support 0 -> weight 0
        // weighted = (3*0.5 + 2*0.8 + 3*0.8) / 8 = 5.5 / 8 = 0.6875
        Assert.Equal(0.6875, r.WeightedF1!.Value, 12);
        Assert.Equal(8, r.N);
        Assert.Equal(2, r.Unmatched);
    }

    [Fact]
    public void Headline_yes_no_does_not_match_inside_words()
    {
        (string, string)[] pairs =
        [
            ("Yes", "yes"),              // Yes  correct
            ("No", "No, it does not."),  // No   correct
            ("No", "Not really"),        // unmatched ("No" inside "Not") wrong
            ("Yes", "No. Yes."),         // No   wrong (earliest)
        ];
        var r = TaskScorer.Score("headline", pairs);
        // accuracy = 2/4 = 0.5
        // Yes: support 2, TP 1, FP 0, FN 1 -> 2/3;  No: support 2, TP 1, FP 1, FN 1 -> 2/4 = 0.5
        // weighted = (2*2/3 + 2*0.5) / 4 = (4/3 + 1) / 4 = 7/12
        Assert.Equal(0.5, r.Accuracy, 12);
        Assert.Equal(7.0 / 12, r.WeightedF1!.Value, 12);
    }

    [Fact]
    public void Nwgi_scores_seven_labels_and_nwgi_3_folds_them()
    {
        (string, string)[] pairs =
        [
            ("strong negative", "Strong negative"),          // 7: correct   3: negative/negative correct
            ("mildly positive", "mildly positive."),         // 7: correct   3: neutral/neutral correct
            ("moderately positive", "positive"),             // 7: unmatched 3: positive/positive correct (bare label counts)
            ("strong negative", "moderately negative"),      // 7: wrong     3: negative/negative correct
            ("neutral", "strong positive"),                  // 7: wrong     3: neutral/positive wrong
        ];
        var seven = TaskScorer.Score("nwgi", pairs);
        // 7 labels: accuracy 2/5 = 0.4
        //   strong negative: support 2, TP 1, FP 0, FN 1 -> 2/3
        //   mildly positive: support 1, TP 1 -> 1
        //   moderately positive: support 1, TP 0 -> 0;  neutral: support 1, TP 0 -> 0
        //   (moderately negative, strong positive, <unmatched>: support 0)
        //   weighted = (2*2/3 + 1) / 5 = (7/3) / 5 = 7/15
        Assert.Equal(0.4, seven.Accuracy, 12);
        Assert.Equal(7.0 / 15, seven.WeightedF1!.Value, 12);
        Assert.Equal(1, seven.Unmatched);

        var three = TaskScorer.Score("nwgi_3", pairs);
        // 3 classes: truth [neg, neu, pos, neg, neu], predicted [neg, neu, pos, neg, pos]; accuracy 4/5 = 0.8
        //   negative: support 2, TP 2 -> 1;  neutral: support 2, TP 1, FP 0, FN 1 -> 2/3;  positive: support 1, TP 1, FP 1 -> 2/3
        //   weighted = (2*1 + 2*2/3 + 1*2/3) / 5 = (2 + 4/3 + 2/3) / 5 = 4/5
        Assert.Equal(0.8, three.Accuracy, 12);
        Assert.Equal(0.8, three.WeightedF1!.Value, 12);
    }

    [Fact]
    public void Label_matcher_prefers_the_longest_label_at_the_same_position()
    {
        var map = new Dictionary<string, string> { ["strong"] = "s", ["strong negative"] = "sn", ["negative"] = "n" };
        Assert.Equal("sn", LabelMatcher.Match("STRONG NEGATIVE", map));
        Assert.Equal("n", LabelMatcher.Match("negative, strong", map));
        Assert.Equal(LabelMatcher.Unmatched, LabelMatcher.Match("nonnegative", map));
    }

    [Fact]
    public void Unknown_target_is_a_user_error() =>
        Assert.Contains("target 'bullish'", Assert.Throws<UserInputException>(() => TaskScorer.Score("fpb", [("bullish", "positive")])).Message);

    [Fact]
    public void Weighted_f1_is_sklearns()
    {
        // sklearn: f1_score(["a","a","b","c"], ["a","b","b","b"], average="weighted")
        //   a: TP 1, FP 0, FN 1 -> 2/3;  b: TP 1, FP 2, FN 0 -> 2/4 = 0.5;  c: TP 0 -> 0
        //   weighted = (2*2/3 + 1*0.5 + 1*0) / 4 = (4/3 + 1/2) / 4 = 11/24
        Assert.Equal(11.0 / 24, WeightedF1.Compute(["a", "a", "b", "c"], ["a", "b", "b", "b"]), 12);
        Assert.Equal(0, WeightedF1.Compute([], []));
    }
}
