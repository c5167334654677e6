namespace FinQLoRA.Adapters;

/// <summary>A saved adapter folder: how many projections and parameters it holds and how big its weights file is
/// (<see cref="AdapterBytes"/> = size of adapter_model.safetensors, header included; <see cref="TensorBytes"/> = the
/// tensor data alone, which is what <see cref="PeftAdapterSize"/> predicts).</summary>
public sealed record PeftAdapterInfo(string Directory, string AdapterName, int Modules, long Parameters, long TensorBytes, long AdapterBytes);
