namespace FinQLoRA.Models;

/// <summary>The gated MLP's activation: <c>down(act(gate(x)) ⊙ up(x))</c>.</summary>
public enum Activation
{
    /// <summary>SwiGLU (Llama, Qwen, Mistral, Phi): <c>silu</c>.</summary>
    Silu,
    /// <summary>GeGLU (Gemma): GELU with the tanh approximation (<c>gelu_pytorch_tanh</c>).</summary>
    GeluTanh,
}
