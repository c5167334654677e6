using System.Text;
using FinQLoRA.Data.Tasks;
using FinQLoRA.Tests.Support;
using Xunit;

namespace FinQLoRA.Tests.Data;

/// <summary>Source readers on small hand-written files: formats, encodings and one-line errors naming file:line.</summary>
public sealed class SourceReaderTests
{
    private static IReadOnlyList<Example> Build(string task, string path, DataSplit split = DataSplit.Train, int seed = 1) =>
        TaskDataBuilder.Build(task, [path], split, [], seed).Examples;

    [Fact]
    public void Fpb_reads_latin1_and_utf8_files_alike()
    {
        using var dir = new TempFolder();
        string line = "Sepp\u00e4l\u00e4 's net sales rose .@positive\n";
        var latin1 = Build("fpb", dir.WriteBytes("latin1.txt", Encoding.Latin1.GetBytes(line)));
        var utf8 = Build("fpb", dir.WriteBytes("utf8.txt", Encoding.UTF8.GetBytes(line)));
        Assert.Equal(latin1, utf8);
        Assert.Equal(new Example(
            "Instruction: What is the sentiment of this news? Please choose an answer from {negative/neutral/positive}.\nInput: Sepp\u00e4l\u00e4 's net sales rose .\nAnswer: ",
            "positive"), latin1.Single());
    }

    [Fact]
    public void Fpb_line_without_label_names_file_and_line()
    {
        using var dir = new TempFolder();
        string path = dir.Write("bad.txt", "Fine .@neutral\nno label here\n");
        var ex = Assert.Throws<UserInputException>(() => Build("fpb", path));
        Assert.StartsWith($"{path}:2:", ex.Message);
        Assert.DoesNotContain('\n', ex.Message);
    }

    [Fact]
    public void Fpb_unknown_label_is_reported()
    {
        using var dir = new TempFolder();
        string path = dir.Write("bad.txt", "Fine .@bullish\n");
        Assert.Contains($"{path}:1: label 'bullish'", Assert.Throws<UserInputException>(() => Build("fpb", path)).Message);
    }

    [Fact]
    public void Fiqa_emits_one_example_per_aspect_with_threshold_labels_and_medium_from_file_name()
    {
        using var dir = new TempFolder();
        string json = """{"1": {"sentence": "A", "info": [{"sentiment_score": "-0.1"}, {"sentiment_score": "-0.101"}]}, "2": {"sentence": "B", "info": [{"sentiment_score": 0.1}]}}""";
        var posts = Build("fiqa", dir.Write("task1_post_ABSA_train.json", json));
        Assert.Equal(["neutral", "negative", "positive"], posts.Select(e => e.Target));
        Assert.All(posts, e => Assert.Contains("this tweet?", e.Context));
        Assert.All(Build("fiqa", dir.Write("task1_headline_ABSA_test.json", json)), e => Assert.Contains("this news?", e.Context));
        var ex = Assert.Throws<UserInputException>(() => Build("fiqa", dir.Write("fiqa.json", json)));
        Assert.Contains("task1_post_ABSA", ex.Message);
    }

    [Fact]
    public void Tfns_parses_quoted_multiline_texts_and_maps_labels_per_task()
    {
        using var dir = new TempFolder();
        string path = dir.Write("t.csv", "text,label\r\n\"line one\nline \"\"two\"\", still\",1\r\nplain,2\r\nbear,0\r\n");
        var finlora = Build("tfns", path);
        Assert.Equal("line one\nline \"two\", still", FinLoraPrompt.InputText(finlora[0].Context));
        Assert.Equal(["neutral", "positive", "negative"], finlora.Select(e => e.Target));
        Assert.Equal(["positive", "neutral", "negative"], Build("tfns_card", path).Select(e => e.Target));
    }

    [Fact]
    public void Csv_errors_name_file_and_line()
    {
        using var dir = new TempFolder();
        string unterminated = dir.Write("u.csv", "text,label\nok,0\n\"never closed,1\n");
        Assert.StartsWith($"{unterminated}:3: quoted field never closed", Assert.Throws<UserInputException>(() => Build("tfns", unterminated)).Message);
        string trailing = dir.Write("t.csv", "text,label\n\"quoted\"x,0\n");
        Assert.StartsWith($"{trailing}:2: unexpected 'x'", Assert.Throws<UserInputException>(() => Build("tfns", trailing)).Message);
        string badLabel = dir.Write("b.csv", "text,label\nok,0\nhmm,3\n");
        Assert.StartsWith($"{badLabel}:3: label '3'", Assert.Throws<UserInputException>(() => Build("tfns", badLabel)).Message);
        string noColumn = dir.Write("n.csv", "tweet,label\nok,0\n");
        Assert.StartsWith($"{noColumn}:1: no column 'text'", Assert.Throws<UserInputException>(() => Build("tfns", noColumn)).Message);
    }

    [Fact]
    public void Jsonl_source_passes_through_and_reports_bad_lines()
    {
        using var dir = new TempFolder();
        string good = dir.Write("g.jsonl", "{\"context\": \"c\", \"target\": \"t\", \"pages\": [1]}\n");
        Assert.Equal(new Example("c", "t"), Build("nwgi", good).Single());
        string bad = dir.Write("b.jsonl", "{\"context\": \"c\", \"target\": \"t\"}\n{\"context\": \"c\"}\n");
        Assert.StartsWith($"{bad}:2: missing string field \"target\"", Assert.Throws<UserInputException>(() => Build("nwgi", bad)).Message);
        string broken = dir.Write("x.jsonl", "{not json\n");
        Assert.StartsWith($"{broken}:1: invalid JSON", Assert.Throws<UserInputException>(() => Build("formula", broken)).Message);
        string csv = dir.Write("x.csv", "a,b\n");
        Assert.Contains("reads only FinLoRA JSONL", Assert.Throws<UserInputException>(() => Build("finer", csv)).Message);
    }

    [Fact]
    public void Headline_row_becomes_nine_questions_with_derived_answers()
    {
        using var dir = new TempFolder();
        string header = "Dates\tURL\tNews\tPrice Direction Up\tPrice Direction Constant\tPrice Direction Down\tAsset Comparision\tPast Information\tFuture Information\tPrice Sentiment\r\n";
        // About price, going up, past, compares with another asset.
        string path = dir.Write("h.tsv", header + "1-1-2010\thttp://x\tgold beats silver, rises 2%\t1\t0\t0\t1\t1\t0\tpositive\r\n");
        var examples = TaskDataBuilder.Build("headline", [path], DataSplit.Train, [], 1).Examples
            .Concat(TaskDataBuilder.Build("headline", [path], DataSplit.Test, [], 1).Examples).ToList();
        Assert.Equal(["Yes", "Yes", "No", "No", "Yes", "No", "No", "No", "Yes"], examples.Select(e => e.Target));
        Assert.Equal(
            "Instruction: Does the news headline compare gold with any other asset? Please choose an answer from {Yes/No}.\nInput: gold beats silver, rises 2%\nAnswer: ",
            examples[8].Context);
        string bad = dir.Write("b.tsv", header + "d\tu\tgold\t2\t0\t0\t0\t1\t0\tpositive\r\n");
        Assert.StartsWith($"{bad}:2: column 'Price Direction Up' is '2'", Assert.Throws<UserInputException>(() => Build("headline", bad)).Message);
    }

    [Fact]
    public void Xbrl_sources_concatenate_instruction_and_input_and_refuse_the_wrong_file()
    {
        using var dir = new TempFolder();
        string tags = dir.Write("tags.csv", "instruction,input,output\n\"Be brief. \nExample question: q\nExample answer: a\n\",\"Question: What? \nAnswer:\",us-gaap:Assets / us-gaap:Equity\n");
        var e = Build("xbrl_tags", tags, DataSplit.Train, seed: 3).Concat(Build("xbrl_tags", tags, DataSplit.Test, seed: 3)).Single();
        Assert.Equal("Be brief. \nExample question: q\nExample answer: a\nQuestion: What? \nAnswer:", e.Context);
        Assert.Equal("us-gaap:Assets / us-gaap:Equity", e.Target);
        Assert.Contains("use --task xbrl_tags", FinQLoRA.Cli.FlagNames.Render(Assert.Throws<UserInputException>(() => Build("xbrl_values", tags))));
    }

    [Fact]
    public void Xbrl_term_skips_excel_error_rows()
    {
        using var dir = new TempFolder();
        string path = dir.Write("terms.csv", "Term,Explanation,,\nPrepaid Taxes,Amount paid in advance.,,\n#NAME?,Something.,,\nBilled,#NAME?,,\n");
        Assert.Equal(new Example("Explain this XBRL term briefly in one sentence: Prepaid Taxes. Answer:", "Amount paid in advance."), Build("xbrl_term", path).Single());
    }

    [Fact]
    public void Missing_source_file_is_a_user_error()
    {
        Assert.Contains("source file not found", Assert.Throws<UserInputException>(() => Build("fpb", "/nonexistent/x.txt")).Message);
        Assert.Contains("unknown task 'nope'", Assert.Throws<UserInputException>(() => TaskRegistry.Get("nope")).Message);
    }
}
