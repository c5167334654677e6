namespace FinQLoRA.Quantization.Gemv;

/// <summary>
/// The number of input rows a gemv kernel is compiled for. Each row keeps its own accumulator register; a kernel
/// generic over a struct of this interface is specialised by the JIT per count, so the guards
/// <c>if (TRows.Count &gt; k)</c> vanish and every accumulator stays in a register (a loop over an accumulator array
/// would go through memory on every multiply-add).
/// </summary>
internal interface IGemvRows
{
    static abstract int Count { get; }
}

internal struct Rows1 : IGemvRows { public static int Count => 1; }
internal struct Rows2 : IGemvRows { public static int Count => 2; }
internal struct Rows3 : IGemvRows { public static int Count => 3; }
internal struct Rows4 : IGemvRows { public static int Count => 4; }
internal struct Rows5 : IGemvRows { public static int Count => 5; }
internal struct Rows6 : IGemvRows { public static int Count => 6; }
internal struct Rows7 : IGemvRows { public static int Count => 7; }
internal struct Rows8 : IGemvRows { public static int Count => 8; }
