using System.Text.Json.Serialization;

namespace FinQLoRA.Training.Optimizers;

/// <summary>
/// The scalar part of an optimizer checkpoint. Serialise it with System.Text.Json as this base type: the
/// <c>"algorithm"</c> discriminator selects the concrete record on the way back. Doubles round-trip exactly.
/// </summary>
[JsonPolymorphic(TypeDiscriminatorPropertyName = "algorithm")]
[JsonDerivedType(typeof(AdamWScalarState), "adamw")]
[JsonDerivedType(typeof(ZeroOneAdamScalarState), "zero_one_adam")]
[JsonDerivedType(typeof(SgdScalarState), "sgd")]
public abstract record OptimizerScalarState;
