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
                QkvBias = json.Flag("attention_bias"), OutputBias = json.Flag("attention_bias"),
            };
        },
        WriteArchitecture = (c, o) =>
        {
            o["hidden_act"] = "silu";
            o["partial_rotary_factor"] = c.PartialRotaryFactor;
            o["attention_bias"] = c.QkvBias;
            o["sliding_window"] = c.SlidingWindow;
            // LongRoPE's original context sits at the config's top level, where transformers' Phi-3 (and our reader)
            // look for it; without it a written config (a merged model's) would read max_position_embeddings instead
            // and change the scale and the attention factor.
            if (c.RopeScaling is { Type: "longrope" } rope) o["original_max_position_embeddings"] = rope.OriginalMaxPositionEmbeddings;
        },
    };
}
