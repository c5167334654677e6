using FinQLoRA.Data.Sft;
using FinQLoRA.Data.Tasks;

namespace FinQLoRA.Demo;

/// <summary>
/// A small financial-news sentiment task generated from templates (company, move, cause), so the demo needs no
/// download: the label follows from the wording, as in FPB/TFNS. Prompts use the tfns task's reference format.
/// </summary>
public static class SyntheticSentiment
{
    private static readonly string[] Companies = ["Nordbank", "Apex Steel", "Helios Energy", "Vantage Retail", "Orion Pharma",
        "Baltic Shipping", "Crest Insurance", "Summit Telecom", "Ferro Mining", "Lumen Software", "Atlas Foods", "Pioneer Autos"];
    private static readonly string[] Up = ["shares surge {0}% after record quarterly profit", "stock jumps {0}% as revenue beats estimates",
        "raises full-year guidance; shares climb {0}%", "wins major contract, stock rallies {0}%", "profit doubles and shares gain {0}%"];
    private static readonly string[] Down = ["shares plunge {0}% after profit warning", "stock falls {0}% as sales miss forecasts",
        "cuts outlook; shares drop {0}%", "faces lawsuit, stock tumbles {0}%", "posts quarterly loss and shares slide {0}%"];
    private static readonly string[] Flat = ["to hold annual meeting on {0} May", "appoints new board member effective {0} June",
        "publishes interim report on {0} August", "announces date of capital markets day, {0} October", "completes planned office move on {0} March"];

    public static (List<Example> Train, List<Example> Test) Make(int train, int test, int seed)
    {
        var rng = new Random(seed);
        var task = TaskRegistry.Get("tfns");
        Example One()
        {
            int kind = rng.Next(3);
            string[] templates = kind == 0 ? Up : kind == 1 ? Down : Flat;
            string company = Companies[rng.Next(Companies.Length)];
            string text = $"{company} " + string.Format(templates[rng.Next(templates.Length)], rng.Next(2, 29));
            // tfns's label words: the template's direction decides the sentiment.
            return new Example(task.PromptFor(text), kind == 0 ? TaskLabels.Positive : kind == 1 ? TaskLabels.Negative : TaskLabels.Neutral);
        }
        var all = new HashSet<string>();
        var trainSet = new List<Example>();
        var testSet = new List<Example>();
        while (trainSet.Count + testSet.Count < train + test)
        {
            var e = One();
            if (!all.Add(e.Context)) continue; // no test item ever appears in training
            (trainSet.Count < train ? trainSet : testSet).Add(e);
        }
        return (trainSet, testSet);
    }
}
