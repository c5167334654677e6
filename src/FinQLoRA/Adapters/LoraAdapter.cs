using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FinQLoRA.Adapters;

/// <summary>
/// The trainable weights of one named adapter on one projection, always fp32 (PEFT's adapter autocast):
/// A [r, in], B [out, r] and, for DoRA, the magnitude m [out]. The math lives in <see cref="LoraLinear"/>.
/// </summary>
public sealed class LoraAdapter : nn.Module
{
    // Field names are the PEFT key suffixes (lora_A.weight, lora_B.weight, lora_magnitude_vector).
    private readonly Parameter lora_A;
    private readonly Parameter lora_B;
    private readonly Parameter? lora_magnitude_vector;

    public LoraAdapter(string name, Tensor a, Tensor b, Tensor? magnitude, double scaling, double dropout) : base($"LoraAdapter({name})")
    {
        Name = name;
        lora_A = new Parameter(a, requires_grad: true);
        lora_B = new Parameter(b, requires_grad: true);
        if (magnitude is not null) lora_magnitude_vector = new Parameter(magnitude, requires_grad: true);
        Scaling = scaling;
        Dropout = dropout;
        RegisterComponents();
    }

    public string Name { get; }
    /// <summary>A [r, in].</summary>
    public Parameter A => lora_A;
    /// <summary>B [out, r].</summary>
    public Parameter B => lora_B;
    /// <summary>DoRA's magnitude m [out]; null for plain LoRA.</summary>
    public Parameter? Magnitude => lora_magnitude_vector;
    public long Rank => lora_A.shape[0];
    public double Scaling { get; }
    public double Dropout { get; }
    public bool UseDora => lora_magnitude_vector is not null;
    /// <summary>FFA-LoRA: A keeps its values and is left out of <see cref="TrainableTensors"/> (but not of <see cref="Tensors"/>).</summary>
    public bool AFrozen { get; private set; }

    /// <summary>Every tensor with its PEFT key suffix: what an adapter file holds.</summary>
    public IEnumerable<(string Name, Parameter P)> Tensors()
    {
        yield return ("lora_A.weight", lora_A);
        yield return ("lora_B.weight", lora_B);
        if (lora_magnitude_vector is not null) yield return ("lora_magnitude_vector", lora_magnitude_vector);
    }

    /// <summary>The tensors an optimizer updates: <see cref="Tensors"/> without A when A is frozen.</summary>
    public IEnumerable<(string Name, Parameter P)> TrainableTensors() => Tensors().Where(t => !(AFrozen && ReferenceEquals(t.P, lora_A)));

    /// <summary>Freezes A where it is (FFA-LoRA): no gradient is computed for it and no optimizer sees it.</summary>
    public void FreezeA()
    {
        if (UseDora) throw LoraConfig.FrozenAWithDora($"adapter '{Name}'");
        AFrozen = true;
        lora_A.requires_grad = false;
    }

    /// <summary>ΔW = s·B·A [out, in] in fp32.</summary>
    public Tensor DeltaWeight()
    {
        using var scope = NewDisposeScope();
        return (lora_B.matmul(lora_A) * Scaling).MoveToOuterDisposeScope();
    }

    /// <summary>Overwrites the weights in place (loading a saved adapter); shapes must already match.</summary>
    public void CopyFrom(Tensor a, Tensor b, Tensor? magnitude)
    {
        using var noGrad = no_grad();
        lora_A.copy_(a);
        lora_B.copy_(b);
        if (lora_magnitude_vector is not null && magnitude is not null) lora_magnitude_vector.copy_(magnitude);
    }
}
