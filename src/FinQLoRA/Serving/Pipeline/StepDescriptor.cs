using System.Text;
using FinQLoRA.Distributed;
using static TorchSharp.torch;

namespace FinQLoRA.Serving.Pipeline;

/// <summary>
/// One instruction from rank 0 to every stage, broadcast before the stages act on it: a layer step (its rows, tokens,
/// RoPE positions, attention mask, where the cache writes, each row's adapter and how the rows are cut into
/// micro-batches), a slot move, an adapter placed at or vacated from a stack index or removed, a heartbeat, start or shutdown. On the wire: a fixed header
/// of int64s, then the names as UTF-8, then the step's tensors (on the CPU; a stage moves them to its device).
/// The mask travels as which keys are visible (one byte each) and is rebuilt exactly: the engine's masks hold only
/// 0 and float.MinValue.
/// </summary>
internal sealed record StepDescriptor(StepKind Kind)
{
    private const int HeaderLength = 12;
    private const int Prefill = 0, PrefillAt = 1, Decode = 2;

    // Layers
    public int Rows { get; init; }
    public int Tokens { get; init; }
    public int MicroBatches { get; init; }
    public CacheWrite? Write { get; init; }
    public Tensor? Positions { get; init; }   // [rows, tokens] int64
    public Tensor? Mask { get; init; }        // [rows, 1, tokens, span] fp32 additive
    public string?[] Adapters { get; init; } = [];
    // Move
    public int From { get; init; }
    public int To { get; init; }
    public int Length { get; init; }
    // PlaceAdapter, VacateAdapter, RemoveAdapter
    public string Name { get; init; } = "";
    /// <summary>The PEFT folder a placed adapter is read from; "" for one that came with the model.</summary>
    public string Directory { get; init; } = "";
    public int Index { get; init; }
    // Start
    public int MaxBatch { get; init; }
    public int MaxModelLen { get; init; }
    public int MaxLoras { get; init; }

    /// <summary>Rank 0 sends <paramref name="mine"/>; every other rank passes null and gets rank 0's, its tensors on
    /// <paramref name="device"/>. Call it inside a dispose scope: the received tensors belong to it.</summary>
    public static StepDescriptor Broadcast(ICommunicator comm, StepDescriptor? mine, Device device)
    {
        var header = new long[HeaderLength];
        byte[] text = [];
        if (mine is not null)
        {
            text = Encoding.UTF8.GetBytes(mine.Text());
            mine.FillHeader(header);
            header[HeaderLength - 1] = text.Length;
        }
        var head = tensor(header);
        comm.Broadcast(head, 0);
        header = head.data<long>().ToArray();
        var kind = (StepKind)header[0];
        if (header[HeaderLength - 1] > 0)
        {
            var bytes = mine is null ? zeros(header[HeaderLength - 1], ScalarType.Byte) : tensor(text);
            comm.Broadcast(bytes, 0);
            text = bytes.data<byte>().ToArray();
        }
        if (mine is not null)
        {
            if (kind == StepKind.Layers) mine.BroadcastTensors(comm);
            return mine;
        }
        return kind switch
        {
            StepKind.Start => new StepDescriptor(kind) { MaxBatch = (int)header[1], MaxModelLen = (int)header[2], MaxLoras = (int)header[3] },
            StepKind.Layers => ReceiveLayers(comm, header, Encoding.UTF8.GetString(text), device),
            StepKind.Move => new StepDescriptor(kind) { From = (int)header[1], To = (int)header[2], Length = (int)header[3] },
            StepKind.PlaceAdapter => Names(kind, Encoding.UTF8.GetString(text)) with { Index = (int)header[1] },
            StepKind.VacateAdapter or StepKind.RemoveAdapter => Names(kind, Encoding.UTF8.GetString(text)),
            StepKind.Heartbeat or StepKind.Shutdown => new StepDescriptor(kind),
            _ => throw new InvalidOperationException($"unknown pipeline step kind {header[0]} from rank 0"),
        };
    }

    private static StepDescriptor Names(StepKind kind, string text)
    {
        var parts = text.Split('\n');
        return new StepDescriptor(kind) { Name = parts[0], Directory = parts.Length > 1 ? parts[1] : "" };
    }

    /// <summary>Names as text: an adapter's name and folder, or the adapter names of a layer step's rows (one line
    /// each; the base is an empty line, which no adapter may be named).</summary>
    private string Text() => Kind switch
    {
        StepKind.PlaceAdapter => Name + "\n" + Directory,
        StepKind.VacateAdapter or StepKind.RemoveAdapter => Name,
        StepKind.Layers => Adapters.All(a => a is null) ? "" : string.Join("\n", Adapters.Select(a => a ?? "")),
        _ => "",
    };

    private void FillHeader(long[] h)
    {
        h[0] = (long)Kind;
        switch (Kind)
        {
            case StepKind.Start:
                h[1] = MaxBatch;
                h[2] = MaxModelLen;
                h[3] = MaxLoras;
                break;
            case StepKind.PlaceAdapter:
                h[1] = Index;
                break;
            case StepKind.Move:
                h[1] = From;
                h[2] = To;
                h[3] = Length;
                break;
            case StepKind.Layers:
                h[1] = Rows;
                h[2] = Tokens;
                h[3] = Mask!.shape[3];
                h[4] = MicroBatches;
                (long, long, long, long) write = Write switch
                {
                    CacheWrite.Prefill p => (Prefill, p.Slot, p.Offset, 0),
                    CacheWrite.PrefillAt p => (PrefillAt, p.Slot, 0, p.Span),
                    CacheWrite.Decode d => (Decode, 0, 0, d.Span),
                    _ => throw new InvalidOperationException($"unknown cache write {Write}"),
                };
                (h[5], h[6], h[7], h[8]) = write;
                break;
        }
    }

    private void BroadcastTensors(ICommunicator comm)
    {
        comm.Broadcast(Positions!.to(ScalarType.Int64, CPU).contiguous(), 0);
        comm.Broadcast(Mask!.eq(0).to(ScalarType.Byte, CPU).contiguous(), 0);
        switch (Write)
        {
            case CacheWrite.PrefillAt p: comm.Broadcast(p.Positions.to(ScalarType.Int64, CPU).contiguous(), 0); break;
            case CacheWrite.Decode d: comm.Broadcast(d.Lengths.to(ScalarType.Int64, CPU).contiguous(), 0); break;
        }
    }

    private static StepDescriptor ReceiveLayers(ICommunicator comm, long[] h, string text, Device device)
    {
        long rows = h[1], tokens = h[2], span = h[3];
        var positions = zeros([rows, tokens], ScalarType.Int64);
        comm.Broadcast(positions, 0);
        var visible = zeros([rows, 1, tokens, span], ScalarType.Byte);
        comm.Broadcast(visible, 0);
        var mask = zeros([rows, 1, tokens, span], ScalarType.Float32, device).masked_fill(visible.to(device).eq(0), float.MinValue);
        CacheWrite write;
        switch (h[5])
        {
            case Prefill:
                write = new CacheWrite.Prefill((int)h[6], (int)h[7]);
                break;
            case PrefillAt:
                var at = zeros([rows, tokens], ScalarType.Int64);
                comm.Broadcast(at, 0);
                write = new CacheWrite.PrefillAt((int)h[6], at.to(device), (int)h[8]);
                break;
            case Decode:
                var lengths = zeros(rows, ScalarType.Int64);
                comm.Broadcast(lengths, 0);
                write = new CacheWrite.Decode(lengths.to(device), (int)h[8]);
                break;
            default:
                throw new InvalidOperationException($"unknown cache write {h[5]} from rank 0");
        }
        string?[] adapters = text.Length == 0 ? new string?[rows] : text.Split('\n').Select(a => a.Length == 0 ? null : a).ToArray();
        return new StepDescriptor(StepKind.Layers)
        {
            Rows = (int)rows, Tokens = (int)tokens, MicroBatches = (int)h[4], Write = write,
            Positions = positions.to(device), Mask = mask, Adapters = adapters,
        };
    }
}
