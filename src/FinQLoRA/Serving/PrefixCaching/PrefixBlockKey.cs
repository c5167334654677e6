using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace FinQLoRA.Serving.PrefixCaching;

/// <summary>
/// The identity of one full block of a prompt's prefix: SHA-256 of (the parent block's key, the block's token ids), the
/// first block's parent being a root made of the model, the cache partition and the adapter's load serial (vLLM's
/// chained block hash, with its extra keys). A block thus stands for its whole prefix, not just its own tokens, and
/// two prompts share a block only when every token before it, the partition and the loaded adapter are the same. All
/// 256 bits are compared, so a collision is not a practical concern (2^-128 for a birthday attack).
/// </summary>
internal readonly record struct PrefixBlockKey(ulong A, ulong B, ulong C, ulong D)
{
    private const int Size = 32;

    /// <summary>The root a prompt's chain starts from. <paramref name="modelId"/> is the engine's own random id (a pool
    /// never outlives its model); <paramref name="adapterSerial"/> is <see cref="AdapterRegistry.SerialOf"/>, which a
    /// reload under the same name changes, so that old blocks of that name are never hit; null partition = shared.</summary>
    public static PrefixBlockKey Root(Guid modelId, string? partition, long adapterSerial)
    {
        var bytes = new List<byte>(64);
        bytes.AddRange("finqlora-prefix-v1"u8.ToArray());
        bytes.AddRange(modelId.ToByteArray());
        Span<byte> serial = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(serial, adapterSerial);
        bytes.AddRange(serial.ToArray());
        // the marker byte keeps the shared partition (null) apart from a partition named "" or anything else
        if (partition is null) bytes.Add(0);
        else
        {
            bytes.Add(1);
            bytes.AddRange(Encoding.UTF8.GetBytes(partition));
        }
        return From(SHA256.HashData(bytes.ToArray()));
    }

    /// <summary>The key of the block of <paramref name="tokens"/> that follows the block <see langword="this"/>.</summary>
    public PrefixBlockKey Next(ReadOnlySpan<int> tokens)
    {
        var buffer = new byte[Size + 4 * tokens.Length];
        Write(buffer);
        for (int i = 0; i < tokens.Length; i++) BinaryPrimitives.WriteInt32LittleEndian(buffer.AsSpan(Size + 4 * i), tokens[i]);
        return From(SHA256.HashData(buffer));
    }

    /// <summary>The keys of the first <paramref name="blocks"/> full blocks of <paramref name="ids"/>.</summary>
    public static PrefixBlockKey[] Chain(PrefixBlockKey root, int[] ids, int blockTokens, int blocks)
    {
        var keys = new PrefixBlockKey[blocks];
        var parent = root;
        for (int b = 0; b < blocks; b++) keys[b] = parent = parent.Next(ids.AsSpan(b * blockTokens, blockTokens));
        return keys;
    }

    private void Write(Span<byte> to)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(to, A);
        BinaryPrimitives.WriteUInt64LittleEndian(to[8..], B);
        BinaryPrimitives.WriteUInt64LittleEndian(to[16..], C);
        BinaryPrimitives.WriteUInt64LittleEndian(to[24..], D);
    }

    private static PrefixBlockKey From(ReadOnlySpan<byte> hash) => new(
        BinaryPrimitives.ReadUInt64LittleEndian(hash), BinaryPrimitives.ReadUInt64LittleEndian(hash[8..]),
        BinaryPrimitives.ReadUInt64LittleEndian(hash[16..]), BinaryPrimitives.ReadUInt64LittleEndian(hash[24..]));
}
