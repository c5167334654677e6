// The official client marks its Decisions API (public beta) as for evaluation: exactly what these tests do with it.
#pragma warning disable OPENAI001
using System.ClientModel;
using FinQLoRA.Data.Chat;
using FinQLoRA.Evaluation;
using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Serving.Decisions;
using OpenAI.Decisions;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Serving.Decisions;

/// <summary>Decisions on a model with a chat template (Llama 3's): the prompt is the template's render of the input
/// conversation with the question in the last user turn, BOS written once by the template, and each option's
/// probability is its label's likelihood as the assistant's reply, computed here by one plain forward per option.</summary>
public sealed class DecisionsChatTemplateTests(ChatServeFixture f) : IClassFixture<ChatServeFixture>
{
    [Fact]
    public void AConversationIsRenderedWithTheTemplateAndScoredAsTheAssistantsReply()
    {
        ChatTurn[] input = [new("system", "You label financial news."), new("user", "Is cash an asset? The bank said yes.")];
        var question = new ChoiceQuestion("Which answer does the text give?", [new(DecisionValue.Of("yes")), new(DecisionValue.Of("no")), new(DecisionValue.Of("it depends on the bank"))]);
        var client = new DecisionsClient(new ApiKeyCredential(ChatServeFixture.Key), new DecisionsClientOptions { Endpoint = new Uri(f.Url, "v1") });
        var result = client.CreateDecision(new DecisionCreationOptions(
            [new DecisionsDeveloperMessageItem([new DecisionsInputTextContentPart(input[0].Content)]), new DecisionsUserMessageItem([new DecisionsInputTextContentPart(input[1].Content)])],
            ChatServeFixture.ModelName,
            [new DecisionsChoiceQuestion(question.Choices.Select(c => new DecisionsChoice(c.Value.Text!)), [new DecisionsInputTextInstructionsPart(question.Instructions)])])).Value;

        string context = DecisionPrompt.Context(f.Format, input, question);
        Assert.StartsWith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>", context);
        Assert.EndsWith("Answer with exactly one of the options.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n", context);
        using var model = ModelLoading.LoadModel(f.ModelDir, new ModelLoadOptions { DType = ScalarType.Float32 });
        var ll = question.Options.Select(label => LogLikelihood(model, ChoiceScorer.Continuation(f.Tokenizer, context, label, bos: false))).ToArray();
        Assert.Equal(f.Tokenizer.BosId, ChoiceScorer.Continuation(f.Tokenizer, context, "yes", bos: false).InputIds[0]);
        Assert.NotEqual(f.Tokenizer.BosId, ChoiceScorer.Continuation(f.Tokenizer, context, "yes", bos: false).InputIds[1]); // one BOS, the template's
        double max = ll.Max();
        var p = ll.Select(x => Math.Exp(x - max)).ToArray();
        var answer = Assert.IsType<DecisionsChoiceAnswer>(result.Answers[0]);
        for (int i = 0; i < 3; i++) Assert.Equal(p[i] / p.Sum(), answer.Probabilities[i].Probability, 1e-4);
    }

    /// <summary>Σ log p(label token | everything before it), from one unpadded forward.</summary>
    private static double LogLikelihood(DecoderModel model, LabelContinuation row)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var logp = model.Forward(tensor(row.InputIds.Select(x => (long)x).ToArray(), [1, row.InputIds.Length]))[0].log_softmax(-1);
        double sum = 0;
        for (int pos = row.PromptLength; pos < row.InputIds.Length; pos++) sum += logp[pos - 1, row.InputIds[pos]].item<float>();
        return sum;
    }
}
