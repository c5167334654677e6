using FinQLoRA.Data.Tokenization;
using FinQLoRA.Inference;
using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Recipes;
using FinQLoRA.Tests.Support;
using FinQLoRA.Serving;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Inference;

/// <summary>
/// The text and finish reason of batched generation: the text reads after the prompt (decode(prompt) + text =
/// decode(prompt + output), the leading space a SentencePiece piece carries included, as the server's text), and one
/// <see cref="FinishReason"/> says stop (which stop id or string) or length.
/// </summary>
public sealed class GenerationTextTests
{
    private static readonly string[] Prompts = ["The little dog", "Once upon a time", "Tom had a big"];

    private static void AssertReadsAfterThePrompt(ITextTokenizer tokenizer, GenerationResult r)
    {
        string prompt = tokenizer.Decode(r.PromptIds);
        string whole = tokenizer.Decode([.. r.PromptIds, .. r.OutputIds]);
        Assert.Equal(whole, prompt + r.Text);
    }

    [Fact]
    public void TheTextReadsAfterThePromptWithItsLeadingSpace()
    {
        using var model = SeededLlama.Load();
        var tokenizer = ModelLoading.LoadTokenizer(SeededLlama.Folder);
        var results = new TextGenerator(model, tokenizer).Generate(Prompts, new GenerationOptions { MaxNewTokens = 16 }, batchSize: 2);
        foreach (var r in results) AssertReadsAfterThePrompt(tokenizer, r);
    }

    /// <summary>The seeded tokenizer is SentencePiece-style: an output that starts with a "▁" piece reads " word" after
    /// the prompt, which the output decoded alone loses (the bug generate had; the seeded model's own outputs happen to
    /// start without one, so the ids are recorded here as a decode loop would).</summary>
    [Fact]
    public void AnOutputThatStartsWithASpacePieceKeepsItsSpace()
    {
        var tokenizer = ModelLoading.LoadTokenizer(SeededLlama.Folder);
        int[] prompt = tokenizer.Encode("The little dog", addBos: true);
        int[] whole = tokenizer.Encode("The little dog lived in a big forest.", addBos: true);
        Assert.Equal(prompt, whole[..prompt.Length]);
        int[] output = whole[prompt.Length..];
        var text = new IncrementalText(tokenizer, [], prompt[^1]);
        foreach (int id in output) text.Append(id);
        var r = new GenerationResult(prompt, output, text.Text, FinishReason.Length);
        Assert.Equal("lived in a big forest.", tokenizer.Decode(output));
        Assert.Equal(" lived in a big forest.", r.Text);
        AssertReadsAfterThePrompt(tokenizer, r);
    }

    /// <summary>The seeded model's greedy continuations, found by asking it: those of <see cref="SpaceFirstCandidates"/>
    /// whose first generated piece starts with "▁" (a word after the prompt's last one).</summary>
    internal static readonly string[] SpaceFirstCandidates =
        ["The little dog", "Once upon a time", "Tom had a big", "She said", "The sun", "He went to the", "It was a", "Lily and Ben", "They played", "One day"];

    /// <summary>A generated text that starts with a space piece keeps it, through the generator's own loop (the seeded
    /// model's answer to one of several prompts; stories260K's "The little dog" → " lived in a big forest" is the same
    /// case on real weights).</summary>
    [Fact]
    public void AGreedyAnswerThatStartsWithASpacePieceKeepsItsSpace()
    {
        using var model = SeededLlama.Load();
        var tokenizer = ModelLoading.LoadTokenizer(SeededLlama.Folder);
        var results = new TextGenerator(model, tokenizer).Generate(SpaceFirstCandidates, new GenerationOptions { MaxNewTokens = 6 }, batchSize: 4);
        var spaced = results.Where(r => tokenizer.Decode([.. r.PromptIds, r.OutputIds[0]]).Length > tokenizer.Decode(r.PromptIds).Length + tokenizer.Decode([r.OutputIds[0]]).Length).ToList();
        Assert.NotEmpty(spaced); // else the prompts no longer exercise the case: pick others
        foreach (var r in spaced)
        {
            Assert.StartsWith(" ", r.Text);
            AssertReadsAfterThePrompt(tokenizer, r);
        }
    }

    [Fact]
    public void EachFinishReasonSaysWhichStop()
    {
        using var model = SeededLlama.Load();
        var tokenizer = ModelLoading.LoadTokenizer(SeededLlama.Folder);
        var generator = new TextGenerator(model, tokenizer);
        var free = generator.Generate(["The little dog"], new GenerationOptions { MaxNewTokens = 12 })[0];
        Assert.Equal(FinishReason.Length, free.FinishReason);
        Assert.Equal("length", free.FinishReason.ToString());
        Assert.Equal(12, free.OutputIds.Length);

        // a stop id: the fifth token generated ends the output, and is not part of it
        int stopId = free.OutputIds[4];
        int firstAt = Array.IndexOf(free.OutputIds, stopId);
        var atToken = generator.Generate(["The little dog"], new GenerationOptions { MaxNewTokens = 12, StopIds = [stopId] })[0];
        Assert.Equal(FinishReason.AtToken(stopId), atToken.FinishReason);
        Assert.Equal("stop", atToken.FinishReason.Value);
        Assert.Equal(free.OutputIds[..firstAt], atToken.OutputIds);

        // a stop string from the middle of the free text: the text is cut before its first appearance
        string stop = free.Text.Substring(free.Text.Length / 2, 2);
        var atString = generator.Generate(["The little dog"], new GenerationOptions { MaxNewTokens = 12, StopStrings = ["no such stop", stop] })[0];
        Assert.Equal(FinishReason.AtString(stop), atString.FinishReason);
        Assert.Equal(free.Text[..free.Text.IndexOf(stop, StringComparison.Ordinal)], atString.Text);
    }

    /// <summary>The rule the server's logprob token texts come from: a token reads as it does after the one before it,
    /// its leading space included, so that the tokens' texts make up the whole text.</summary>
    [Fact]
    public void ATokenReadsAfterItsAnchorAsInTheWholeText()
    {
        var tokenizer = ModelLoading.LoadTokenizer(SeededLlama.Folder);
        var ids = tokenizer.Encode("Once upon a time there was a little dog", addBos: true);
        var spaced = 0;
        for (int i = 2; i < ids.Length; i++)
        {
            string before = tokenizer.Decode(ids[..i]);
            string whole = tokenizer.Decode(ids[..(i + 1)]);
            string after = IncrementalText.After(tokenizer, ids[i - 1], [ids[i]]);
            Assert.Equal(whole[before.Length..], after);
            if (after.StartsWith(' ') && !tokenizer.Decode([ids[i]]).StartsWith(' ')) spaced++;
        }
        Assert.True(spaced > 0, "no token whose space only reads after its anchor");
    }

    [Fact]
    public void AppendGivesTheTextAddGives()
    {
        var tokenizer = ModelLoading.LoadTokenizer(SeededLlama.Folder);
        int[] prompt = tokenizer.Encode("The little", addBos: true);
        int[] output = tokenizer.Encode(" dog ran to the park. It was fun!", addBos: false);
        foreach (var stops in new[] { Array.Empty<string>(), ["park"] })
        {
            var added = new IncrementalText(tokenizer, stops, prompt[^1]);
            var appended = new IncrementalText(tokenizer, stops, prompt[^1]);
            string deltas = "";
            foreach (int id in output)
            {
                deltas += added.Add(id);
                appended.Append(id);
            }
            deltas += added.Flush();
            Assert.Equal(added.Text, appended.Text);
            Assert.Equal(deltas, appended.Text);
            Assert.Equal(stops.FirstOrDefault(), appended.StopString);
        }
    }

    [Fact]
    public void TheGenerateRecipeAnswersEachPromptWithTheTextThatReadsAfterIt()
    {
        var result = GenerateRecipe.Run(new GenerateRecipeOptions
        {
            ModelPath = SeededLlama.Folder,
            Load = new ModelLoadOptions { DType = ScalarType.Float32 },
            Prompts = Prompts.Select(p => new GenerateRecipePrompt(p)).ToList(),
            Generation = new GenerationOptions { MaxNewTokens = 8 },
            BatchSize = 2,
        });
        var tokenizer = ModelLoading.LoadTokenizer(SeededLlama.Folder);
        Assert.True(result.IsMain);
        Assert.Null(result.Adapters);
        Assert.Equal(Prompts.Length, result.Outputs.Count);
        for (int i = 0; i < Prompts.Length; i++)
        {
            Assert.Equal(tokenizer.Encode(Prompts[i], addBos: tokenizer.AddsBosByDefault), result.Outputs[i].PromptIds);
            AssertReadsAfterThePrompt(tokenizer, result.Outputs[i]);
        }
    }

    [Fact]
    public void TheGenerateRecipeChecksItsOptionsBeforeLoading()
    {
        var e = Assert.Throws<UserInputException>(() => GenerateRecipe.Run(new GenerateRecipeOptions
        {
            ModelPath = "/no/such/model", Load = new ModelLoadOptions(), Prompts = [new("x")],
            Generation = new GenerationOptions { MaxNewTokens = 0 },
        }));
        Assert.Contains("max_new_tokens", e.Message);
    }
}
