using System.Text;

namespace FinQLoRA.Tests.Serving.Fuzzing;

/// <summary>
/// JSON escapes that .NET cannot write (a JSON writer refuses to encode a lone surrogate), put into a body by a marker:
/// a string gets <see cref="Marker"/> and the serialized body gets the escape in its place.
/// </summary>
internal static class LoneSurrogates
{
    /// <summary>What each marker becomes: lone high and low surrogates alone, before text, after text, and a high
    /// surrogate followed by a non-surrogate escape.</summary>
    public static readonly string[] Escapes = [@"\ud800", @"\udc00abc", @"x\udfff", @"\ud83d", @"\ud83d\u0041", @"\ude00\ud83d"];

    /// <summary>A valid surrogate pair (😀) written as escapes: the control, a string the server must accept.</summary>
    public const string ValidPair = @"\ud83d\ude00";

    public static string Marker(int escape) => $"@@LONE{escape}@@";

    public const string ValidPairMarker = "@@PAIR@@";

    /// <summary>The serialized body with every marker replaced by its escape.</summary>
    public static byte[] Apply(string json)
    {
        var text = new StringBuilder(json);
        for (int i = 0; i < Escapes.Length; i++) text.Replace(Marker(i), Escapes[i]);
        text.Replace(ValidPairMarker, ValidPair);
        return Encoding.UTF8.GetBytes(text.ToString());
    }
}
