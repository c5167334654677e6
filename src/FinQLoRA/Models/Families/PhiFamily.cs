namespace FinQLoRA.Models.Families;

/// <summary>Phi-3/3.5 and Phi-4-mini: q, k, v in one <c>qkv_proj</c> and gate, up in one <c>gate_up_proj</c> (the
/// module names PEFT targets), RoPE on the first <c>partial_rotary_factor</c> of each head, LongRoPE
/// (<c>longrope</c>/<c>su</c>) factors, and a <c>sliding_window</c> on every layer where one is set.</summary>
public static class PhiFamily
{
    public static readonly ModelFamily Phi3 = new()
    {
        ModelType = "phi3",
        HfArchitecture = "Phi3ForCausalLM",
        GgufArchitecture = "phi3",
        Projections = [ProjectionKind.Qkv, ProjectionKind.O, ProjectionKind.GateUp, ProjectionKind.Down],
        Norms = [CommonNorms.AttentionInput, CommonNorms.PreNormMlp],
        ReadArchitecture = (json, c) =>
        {
            int? window = json.OptionalInt("sliding_window");
            return c with
            {
                PartialRotaryFactor = json.Positive("partial_rotary_factor", 1.0),
                SlidingWindow = window,
                SlidingLayers = window is null ? [] : Enumerable.Repeat(true, c.NumLayers).ToArray(),
                // no biases: transformers' Phi3Config has no attention_bias and modeling_phi3 builds qkv_proj, o_proj and
                // gate_up_proj with bias=False, so a stray key (or bias tensor) is ignored there and must be here too
            };
        },
        WriteArchitecture = (c, o) =>
        {
            o["hidden_act"] = "silu";
            o["partial_rotary_factor"] = c.PartialRotaryFactor;
            o["sliding_window"] = c.SlidingWindow;
            // LongRoPE's original context lives at the top level of Phi-3's config.json (Phi3Config's
            // original_max_position_embeddings); without it a re-read config takes max_position_embeddings for it and
            // loses both the factor and the switch to the long factors
            if (c.RopeScaling is { Type: "longrope" } longRope) o["original_max_position_embeddings"] = longRope.OriginalMaxPositionEmbeddings;
        },
    };
}
