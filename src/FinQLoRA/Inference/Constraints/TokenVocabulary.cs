using System.Text;
using FinQLoRA.Data.Tokenization;
using BpeTokenizer = Microsoft.ML.Tokenizers.BpeTokenizer;
using SentencePieceTokenizer = Microsoft.ML.Tokenizers.SentencePieceTokenizer;

namespace FinQLoRA.Inference.Constraints;

/// <summary>
/// Every token of a tokenizer as the bytes it adds to the output text, built once per tokenizer, with a byte trie
/// over them so that the tokens allowed in an automaton state are found by one walk that abandons a branch as soon
/// as its prefix is dead. Byte-level BPE (Llama 3, GPT-2) spells bytes with GPT-2's byte↔unicode table; SentencePiece
/// (Llama 2, stories260K) writes a space as "▁" and a raw byte as <c>&lt;0xXX&gt;</c>. The bytes are those of the text
/// as it reads after the prompt (a SentencePiece token's leading "▁" is a space there: <see cref="IncrementalText"/>).
/// Special tokens (BOS, EOS, chat markers, unknown) and tokens of no bytes are never text: their entry is null.
/// </summary>
public sealed class TokenVocabulary
{
    private readonly byte[]?[] _bytes;
    // the trie, flattened: node n's children are _childByte/_childNode[_childStart[n] .. + _childCount[n]], the tokens
    // that end at it _endIds[_endStart[n] .. + _endCount[n]]; node 0 is the root
    private readonly List<int> _childStart = [], _childCount = [], _endStart = [], _endCount = [];
    private readonly List<byte> _childByte = [];
    private readonly List<int> _childNode = [];
    private readonly List<int> _endIds = [];

    public TokenVocabulary(byte[]?[] bytes)
    {
        _bytes = bytes;
        var ids = Enumerable.Range(0, bytes.Length).Where(i => bytes[i] is { Length: > 0 }).ToArray();
        Array.Sort(ids, (a, b) => bytes[a].AsSpan().SequenceCompareTo(bytes[b]));
        Build(ids, 0, ids.Length, 0);
    }

    /// <summary>Token ids run from 0 to Size - 1.</summary>
    public int Size => _bytes.Length;

    /// <summary>The bytes token <paramref name="id"/> adds to the text, or null for a special token.</summary>
    public byte[]? BytesOf(int id) => id >= 0 && id < _bytes.Length ? _bytes[id] : null;

    /// <summary>The vocabulary of <paramref name="tokenizer"/>; refuses tokenizers whose tokens are not byte-addressable.</summary>
    public static TokenVocabulary From(ITextTokenizer tokenizer)
    {
        if (tokenizer is not LlamaTokenizer llama)
            throw new ConstraintException($"structured outputs need a byte-level BPE or SentencePiece tokenizer; {tokenizer.GetType().Name} is neither");
        var bytes = new byte[]?[llama.VocabSize];
        switch (llama.Inner)
        {
            case BpeTokenizer { ByteLevel: true } bpe:
                foreach (var (text, id) in bpe.Vocabulary) Set(bytes, id, ByteLevelBytes(text));
                break;
            case SentencePieceTokenizer sp:
                foreach (var (piece, id) in sp.Vocabulary)
                    Set(bytes, id, TokenizerLoader.IsByteToken(piece)
                        ? [Convert.ToByte(piece[3..5], 16)]
                        : Encoding.UTF8.GetBytes(piece.Replace('\u2581', ' ')));
                if (sp.UnknownId >= 0 && sp.UnknownId < bytes.Length) bytes[sp.UnknownId] = null;
                break;
            default:
                throw new ConstraintException($"structured outputs need a byte-level BPE or SentencePiece tokenizer; this one is a {llama.Inner.GetType().Name}");
        }
        foreach (int id in llama.SpecialIds.Concat(llama.EosIds).Concat(llama.BosId is { } b ? [b] : []))
            if (id >= 0 && id < bytes.Length) bytes[id] = null;
        return new TokenVocabulary(bytes);
    }

    private static void Set(byte[]?[] bytes, int id, byte[]? value)
    {
        if (id >= 0 && id < bytes.Length) bytes[id] = value;
    }

    /// <summary>GPT-2's table: printable bytes stand for themselves, the others (controls, space, 0x7F–0xA0, 0xAD)
    /// for U+0100 onwards in byte order. Null when a character is not in the table.</summary>
    private static byte[]? ByteLevelBytes(string text)
    {
        var result = new byte[text.Length];
        for (int i = 0; i < text.Length; i++)
        {
            if (ByteOfChar(text[i]) is not { } b) return null;
            result[i] = b;
        }
        return result;
    }

    private static readonly Dictionary<char, byte> CharToByte = BuildByteLevelTable();

    private static byte? ByteOfChar(char c) => CharToByte.TryGetValue(c, out byte b) ? b : null;

    private static Dictionary<char, byte> BuildByteLevelTable()
    {
        var table = new Dictionary<char, byte>();
        int next = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            table[printable ? (char)b : (char)(256 + next++)] = (byte)b;
        }
        return table;
    }

    /// <summary>A node for sorted ids[lo..hi) that share their first <paramref name="depth"/> bytes.</summary>
    private int Build(int[] ids, int lo, int hi, int depth)
    {
        int node = _childStart.Count;
        _childStart.Add(0);
        _childCount.Add(0);
        _endStart.Add(_endIds.Count);
        int i = lo;
        while (i < hi && _bytes[ids[i]]!.Length == depth) _endIds.Add(ids[i++]);
        _endCount.Add(_endIds.Count - _endStart[node]);
        // group the rest by their next byte; reserve the child slots first so that they stay contiguous
        var groups = new List<(byte Byte, int Lo, int Hi)>();
        while (i < hi)
        {
            byte b = _bytes[ids[i]]![depth];
            int j = i;
            while (j < hi && _bytes[ids[j]]![depth] == b) j++;
            groups.Add((b, i, j));
            i = j;
        }
        int first = _childByte.Count;
        _childStart[node] = first;
        _childCount[node] = groups.Count;
        foreach (var g in groups)
        {
            _childByte.Add(g.Byte);
            _childNode.Add(-1);
        }
        for (int k = 0; k < groups.Count; k++) _childNode[first + k] = Build(ids, groups[k].Lo, groups[k].Hi, depth + 1);
        return node;
    }

    /// <summary>The tokens whose bytes, fed from <paramref name="state"/>, stay live: one walk of the trie that
    /// steps <paramref name="dfa"/> byte by byte and drops a branch at its first dead byte. A bit set over ids.</summary>
    internal ulong[] Allowed(LazyDfa dfa, int state)
    {
        var bits = new ulong[(Size + 63) / 64];
        var stack = new Stack<(int Node, int State)>();
        stack.Push((0, state));
        while (stack.Count > 0)
        {
            var (node, s) = stack.Pop();
            for (int e = _endStart[node], end = e + _endCount[node]; e < end; e++)
            {
                int id = _endIds[e];
                bits[id >> 6] |= 1UL << (id & 63);
            }
            for (int c = _childStart[node], end = c + _childCount[node]; c < end; c++)
            {
                int next = dfa.Step(s, _childByte[c]);
                if (next != LazyDfa.Dead) stack.Push((_childNode[c], next));
            }
        }
        return bits;
    }
}
