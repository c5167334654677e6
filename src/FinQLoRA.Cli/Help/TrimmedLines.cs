using Spectre.Console;
using Spectre.Console.Rendering;

namespace FinQLoRA.Cli.Help;

/// <summary>Renders <paramref name="parts"/> one after the other with the trailing blanks of every line dropped
/// (styles and line breaks kept).</summary>
internal sealed class TrimmedLines(IReadOnlyList<IRenderable> parts) : IRenderable
{
    public Measurement Measure(RenderOptions options, int maxWidth)
    {
        var sizes = parts.Select(p => p.Measure(options, maxWidth)).ToList();
        return sizes.Count == 0 ? new Measurement(0, 0) : new Measurement(sizes.Max(s => s.Min), sizes.Max(s => s.Max));
    }

    public IEnumerable<Segment> Render(RenderOptions options, int maxWidth)
    {
        // blanks are held back until something visible follows them on the same line
        var blanks = new List<Segment>();
        foreach (var segment in parts.SelectMany(p => p.Render(options, maxWidth)))
        {
            if (segment.IsLineBreak)
            {
                blanks.Clear();
                yield return segment;
                continue;
            }
            if (segment.IsControlCode || segment.Text.Length == 0)
            {
                yield return segment;
                continue;
            }
            string visible = segment.Text.TrimEnd(' ');
            if (visible.Length == 0)
            {
                blanks.Add(segment);
                continue;
            }
            foreach (var blank in blanks) yield return blank;
            blanks.Clear();
            yield return visible.Length == segment.Text.Length ? segment : new Segment(visible, segment.Style);
            if (visible.Length < segment.Text.Length) blanks.Add(new Segment(segment.Text[visible.Length..], segment.Style));
        }
    }
}
