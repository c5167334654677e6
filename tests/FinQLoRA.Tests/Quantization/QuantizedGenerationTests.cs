using FinQLoRA.Loading;
using FinQLoRA.Data.Tokenization;
using FinQLoRA.Inference;
using FinQLoRA.Models;
using FinQLoRA.Quantization;
using FinQLoRA.Tests.Support;
using Xunit.Abstractions;
using FinQLoRA.Serving;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Quantization;

/// <summary>Quantized stories260K still tells a story: greedy text from the 4-bit and 8-bit models, loaded both ways.</summary>
public sealed class QuantizedGenerationTests(ITestOutputHelper output)
{
    [SharedFact]
    public void QuantizedStoriesContinuesOnceUponATimeLikeTheFullModel()
    {
        string hf = Shared.File("models/stories260K-hf");
        var tokenizer = TokenizerLoader.FromHuggingFace(hf);
        var fp32 = new ModelLoadOptions { DType = ScalarType.Float32 };
        var options = new GenerationOptions { MaxNewTokens = 40 };
        string Continue(ModelLoadOptions load, string path)
        {
            using var model = ModelLoading.LoadModel(path, load);
            string text = new TextGenerator(model, tokenizer).Generate(["Once upon a time"], options)[0].Text;
            output.WriteLine(text);
            return text;
        }
        string full = Continue(fp32, hf);
        string nf4 = Continue(fp32.WithBits(4), hf);
        string int8 = Continue(fp32.WithBits(8), hf);
        using var temp = new TempFolder();
        string stored4 = Path.Combine(temp.Path, "q4");
        CheckpointQuantizer.Run(hf, stored4, QuantizationOptions.Nf4);
        Assert.Equal(nf4, Continue(fp32, stored4)); // the saved 4-bit folder generates what on-the-fly 4-bit does

        // the full model's story opening survives quantization word for word (the 4-bit one drifts later:
        // "…loved to play with her toys" instead of "…play outside in the park")
        const string opening = ", there was a little girl named Lily. She loved to play";
        Assert.StartsWith(opening, full);
        Assert.StartsWith(opening, nf4);
        Assert.StartsWith(opening, int8);
    }
}
