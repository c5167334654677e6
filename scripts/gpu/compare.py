#!/usr/bin/env python3
"""Comparisons for scripts/gpu/run-h200.sh: a CUDA result against the CPU result of the same run.

Standard library only (no torch, numpy or safetensors), so it runs, and is tested, anywhere.

  ids       A.jsonl B.jsonl
      `finqlora generate --json` outputs: every line's output_ids must be identical. Exit 1 otherwise.
  tensors   A.safetensors B.safetensors [--tol 1e-4]
      Same tensor names and shapes; max |a - b| per tensor and overall (F32, F16, BF16). Exit 1 above --tol.

Each prints one line ending in OK or MISMATCH, for the run's summary.
"""
import argparse
import array
import json
import struct
import sys


def read_safetensors(path):
    """{name: (dtype, shape, [floats])}; safetensors is an 8-byte header length, a JSON header, then raw data."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = memoryview(data)[8 + n:]
    tensors = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        raw = body[start:end]
        dtype = meta["dtype"]
        if dtype == "F32":
            values = array.array("f")
            values.frombytes(raw)
            if sys.byteorder != "little":
                values.byteswap()
            values = values.tolist()
        elif dtype == "F16":
            values = [v for (v,) in struct.iter_unpack("<e", raw)]
        elif dtype == "BF16":  # the high half of an f32
            values = [struct.unpack("<f", b"\x00\x00" + bytes(raw[i:i + 2]))[0] for i in range(0, len(raw), 2)]
        else:
            sys.exit(f"{path}: tensor {name} has dtype {dtype}; only F32, F16 and BF16 are compared")
        tensors[name] = (dtype, meta["shape"], values)
    return tensors


def cmd_tensors(a):
    ta, tb = read_safetensors(a.a), read_safetensors(a.b)
    if ta.keys() != tb.keys():
        only_a, only_b = sorted(ta.keys() - tb.keys()), sorted(tb.keys() - ta.keys())
        print(f"tensors {a.a} vs {a.b}: names differ (only in the first: {only_a[:3]}, only in the second: {only_b[:3]}) -> MISMATCH")
        return 1
    worst_name, worst = None, 0.0
    for name in sorted(ta):
        (_, shape_a, va), (_, shape_b, vb) = ta[name], tb[name]
        if shape_a != shape_b:
            print(f"tensors: {name} has shape {shape_a} vs {shape_b} -> MISMATCH")
            return 1
        diff = max((abs(x - y) for x, y in zip(va, vb)), default=0.0)
        if diff > worst or worst_name is None:
            worst_name, worst = name, diff
    ok = worst <= a.tol
    print(f"tensors {a.a} vs {a.b}: {len(ta)} tensors, max |diff| {worst:.3e} (in {worst_name}), tolerance {a.tol:g} -> {'OK' if ok else 'MISMATCH'}")
    return 0 if ok else 1


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip().startswith("{")]


def cmd_ids(a):
    la, lb = read_jsonl(a.a), read_jsonl(a.b)
    if not la or len(la) != len(lb):
        print(f"ids {a.a} vs {a.b}: {len(la)} vs {len(lb)} results -> MISMATCH")
        return 1
    differing = [i for i, (x, y) in enumerate(zip(la, lb)) if x["output_ids"] != y["output_ids"]]
    tokens = sum(len(x["output_ids"]) for x in la)
    ok = not differing
    print(f"ids {a.a} vs {a.b}: {len(la)} prompts, {tokens} generated tokens, {len(differing)} differing -> {'OK' if ok else 'MISMATCH'}")
    for i in differing[:3]:
        first = next((k for k, (x, y) in enumerate(zip(la[i]["output_ids"], lb[i]["output_ids"])) if x != y), None)
        print(f"  prompt {i}: first difference at generated token {first}")
    return 0 if ok else 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    ids = sub.add_parser("ids")
    ids.add_argument("a")
    ids.add_argument("b")
    ts = sub.add_parser("tensors")
    ts.add_argument("a")
    ts.add_argument("b")
    ts.add_argument("--tol", type=float, default=1e-4)
    a = p.parse_args()
    return cmd_ids(a) if a.cmd == "ids" else cmd_tensors(a)


if __name__ == "__main__":
    sys.exit(main())
