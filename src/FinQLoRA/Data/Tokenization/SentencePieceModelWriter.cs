using Google.Protobuf;

namespace FinQLoRA.Data.Tokenization;

/// <summary>
/// Writes a minimal SentencePiece <c>ModelProto</c> (BPE, byte fallback) so that Microsoft.ML.Tokenizers'
/// <c>SentencePieceTokenizer</c> can run Llama-2-style vocabularies that reach us without a <c>tokenizer.model</c>
/// file: Hugging Face <c>tokenizer.json</c> and GGUF's embedded <c>llama</c> vocabulary. Field numbers are those of
/// sentencepiece_model.proto (pieces 1 {piece 1, score 2, type 3}; trainer_spec 2 {model_type 3, vocab_size 4,
/// byte_fallback 35, unk/bos/eos/pad_id 40–43}; normalizer_spec 3 {name 1, add_dummy_prefix 3,
/// remove_extra_whitespaces 4, escape_whitespaces 5}).
/// </summary>
public static class SentencePieceModelWriter
{
    public enum PieceType { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 }

    public sealed record Piece(string Text, float Score, PieceType Type);

    public static byte[] Write(IReadOnlyList<Piece> pieces, int unkId, int bosId, int eosId, bool addDummyPrefix)
    {
        using var ms = new MemoryStream();
        var output = new CodedOutputStream(ms);
        foreach (var p in pieces)
        {
            var piece = Message(o =>
            {
                o.WriteTag(1, WireFormat.WireType.LengthDelimited); o.WriteString(p.Text);
                o.WriteTag(2, WireFormat.WireType.Fixed32); o.WriteFloat(p.Score);
                o.WriteTag(3, WireFormat.WireType.Varint); o.WriteInt32((int)p.Type);
            });
            output.WriteTag(1, WireFormat.WireType.LengthDelimited); output.WriteBytes(piece);
        }
        var trainer = Message(o =>
        {
            o.WriteTag(3, WireFormat.WireType.Varint); o.WriteInt32(2); // BPE
            o.WriteTag(4, WireFormat.WireType.Varint); o.WriteInt32(pieces.Count);
            o.WriteTag(35, WireFormat.WireType.Varint); o.WriteBool(true);
            o.WriteTag(40, WireFormat.WireType.Varint); o.WriteInt32(unkId);
            o.WriteTag(41, WireFormat.WireType.Varint); o.WriteInt32(bosId);
            o.WriteTag(42, WireFormat.WireType.Varint); o.WriteInt32(eosId);
            o.WriteTag(43, WireFormat.WireType.Varint); o.WriteInt32(-1);
        });
        output.WriteTag(2, WireFormat.WireType.LengthDelimited); output.WriteBytes(trainer);
        var normalizer = Message(o =>
        {
            o.WriteTag(1, WireFormat.WireType.LengthDelimited); o.WriteString("identity");
            o.WriteTag(3, WireFormat.WireType.Varint); o.WriteBool(addDummyPrefix);
            o.WriteTag(4, WireFormat.WireType.Varint); o.WriteBool(false); // Llama keeps runs of spaces
            o.WriteTag(5, WireFormat.WireType.Varint); o.WriteBool(true);
        });
        output.WriteTag(3, WireFormat.WireType.LengthDelimited); output.WriteBytes(normalizer);
        output.Flush();
        return ms.ToArray();
    }

    private static ByteString Message(Action<CodedOutputStream> write)
    {
        using var ms = new MemoryStream();
        var o = new CodedOutputStream(ms);
        write(o);
        o.Flush();
        return ByteString.CopyFrom(ms.ToArray());
    }
}
