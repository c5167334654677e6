namespace FinQLoRA.Tests.Fuzz;

/// <summary>
/// The folder one fuzz case runs in (also the process's working directory): inputs go under <c>in/</c>, outputs
/// are pointed at <c>out/</c>, and after the run nothing in it may be new or changed.
/// </summary>
internal sealed class FuzzWork(string dir, FuzzInputs inputs)
{
    public string Dir { get; } = dir;

    public FuzzInputs Inputs { get; } = inputs;

    /// <summary>Where outputs are pointed; it must still not exist after a refused run.</summary>
    public string Out(string name) => Path.Combine(Dir, "out", name);

    public string In(string name)
    {
        string path = Path.Combine(Dir, "in", name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        return path;
    }

    public string Write(string name, byte[] bytes)
    {
        string path = In(name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    public string Write(string name, string text) => Write(name, System.Text.Encoding.UTF8.GetBytes(text));

    /// <summary>A corpus file (path relative to Fuzz/corpus) copied into <c>in/</c> under <paramref name="name"/>.</summary>
    public string Corpus(string corpusPath, string? name = null)
    {
        string path = In(name ?? Path.GetFileName(corpusPath));
        File.Copy(Path.Combine(FuzzInputs.Corpus, corpusPath), path);
        return path;
    }

    public byte[] CorpusBytes(string corpusPath) => File.ReadAllBytes(Path.Combine(FuzzInputs.Corpus, corpusPath));

    /// <summary>A private copy of the tiny model folder, to damage.</summary>
    public string Model() => FuzzInputs.CopyFolder(Inputs.Model, In("model"));

    /// <summary>The tiny model quantized to NF4 without double quantization (bitsandbytes layout), to damage.</summary>
    public string QuantizedModel()
    {
        string folder = In("model-nf4");
        FinQLoRA.Quantization.CheckpointQuantizer.Run(Inputs.Model, folder, new FinQLoRA.Quantization.QuantizationOptions(4, FinQLoRA.Quantization.FourBitType.Nf4, false));
        return folder;
    }

    /// <summary>A private copy of the adapter folder, to damage.</summary>
    public string Adapter() => FuzzInputs.CopyFolder(Inputs.Adapter, In("adapter"));

    /// <summary>A valid training file, for commands whose other inputs are the damaged ones.</summary>
    public string GoodData() => Write("train.jsonl", "{\"context\": \"Instruction: What is the sentiment?\\nInput: Profit rose.\\nAnswer: \", \"target\": \"positive\"}\n");
}
