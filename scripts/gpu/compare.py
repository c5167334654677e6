#!/usr/bin/env python3
"""Comparisons for scripts/gpu/run-h200.sh: a CUDA result against the CPU result of the same run.

Standard library only (no torch, numpy or safetensors), so it runs, and is tested, anywhere.

  ids       A.jsonl B.jsonl
      `finqlora generate --json` outputs: every line's output_ids must be identical. Exit 1 otherwise.
  tensors   A.safetensors B.safetensors [--tol 1e-4]
      Same tensor names and shapes; max |a - b| per tensor and overall (F32, F16, BF16). Exit 1 above --tol.
  logits    A.safetensors B.safetensors [--tol 1e-4]
      `finqlora debug dump-logits` outputs: input_ids identical, max |a - b| of the logits at most --tol (absolute);
      the relative figure (max |a - b| / max |a|) is printed beside it.
  dequant   A.safetensors B.safetensors
      `finqlora debug dump-dequant` outputs: every tensor bit-identical (the raw bytes). Exit 1 on any differing element.
  grads     A.safetensors B.safetensors [--rel 1e-5]
      `finqlora debug dump-grads` outputs: for each tensor, max |a - b| / max |a| at most --rel (a tensor of zeros in A
      must be zeros in B).

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
        if dtype == "I64":
            values = array.array("q")
            values.frombytes(raw)
            if sys.byteorder != "little":
                values.byteswap()
            values = values.tolist()
        elif dtype == "F32":
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
            sys.exit(f"{path}: tensor {name} has dtype {dtype}; only F32, F16, BF16 and I64 are compared")
        tensors[name] = (dtype, meta["shape"], values, bytes(raw))
    return tensors


def cmd_tensors(a):
    ta, tb = read_safetensors(a.a), read_safetensors(a.b)
    if ta.keys() != tb.keys():
        only_a, only_b = sorted(ta.keys() - tb.keys()), sorted(tb.keys() - ta.keys())
        print(f"tensors {a.a} vs {a.b}: names differ (only in the first: {only_a[:3]}, only in the second: {only_b[:3]}) -> MISMATCH")
        return 1
    worst_name, worst = None, 0.0
    for name in sorted(ta):
        (_, shape_a, va, _), (_, shape_b, vb, _) = ta[name], tb[name]
        if shape_a != shape_b:
            print(f"tensors: {name} has shape {shape_a} vs {shape_b} -> MISMATCH")
            return 1
        diff = max((abs(x - y) for x, y in zip(va, vb)), default=0.0)
        if diff > worst or worst_name is None:
            worst_name, worst = name, diff
    ok = worst <= a.tol
    print(f"tensors {a.a} vs {a.b}: {len(ta)} tensors, max |diff| {worst:.3e} (in {worst_name}), tolerance {a.tol:g} -> {'OK' if ok else 'MISMATCH'}")
    return 0 if ok else 1


def read_pair(a, b, what):
    """Both dumps, or None after printing why they cannot be compared (names, dtypes or shapes differ)."""
    ta, tb = read_safetensors(a), read_safetensors(b)
    if ta.keys() != tb.keys():
        only_a, only_b = sorted(ta.keys() - tb.keys()), sorted(tb.keys() - ta.keys())
        print(f"{what} {a} vs {b}: names differ (only in the first: {only_a[:3]}, only in the second: {only_b[:3]}) -> MISMATCH")
        return None
    for name in sorted(ta):
        if ta[name][:2] != tb[name][:2]:
            print(f"{what} {a} vs {b}: {name} is {ta[name][0]}{ta[name][1]} vs {tb[name][0]}{tb[name][1]} -> MISMATCH")
            return None
    return ta, tb


def diffs(va, vb):
    """(max |a - b|, max |a|)."""
    return max((abs(x - y) for x, y in zip(va, vb)), default=0.0), max((abs(x) for x in va), default=0.0)


def relative(diff, scale):
    return diff / scale if scale > 0 else (0.0 if diff == 0 else float("inf"))


def cmd_logits(a):
    pair = read_pair(a.a, a.b, "logits")
    if pair is None:
        return 1
    ta, tb = pair
    if "logits" not in ta or "input_ids" not in ta:
        print(f"logits {a.a}: no 'logits' and 'input_ids' (not a dump-logits file) -> MISMATCH")
        return 1
    same_ids = ta["input_ids"][2] == tb["input_ids"][2]
    diff, scale = diffs(ta["logits"][2], tb["logits"][2])
    ok = same_ids and diff <= a.tol
    shape = "x".join(str(d) for d in ta["logits"][1])
    print(f"logits {a.a} vs {a.b}: [{shape}], input_ids {'identical' if same_ids else 'DIFFER'}, max |diff| {diff:.3e}, "
          f"relative {relative(diff, scale):.3e}, tolerance {a.tol:g} -> {'OK' if ok else 'MISMATCH'}")
    return 0 if ok else 1


def cmd_dequant(a):
    pair = read_pair(a.a, a.b, "dequant")
    if pair is None:
        return 1
    ta, tb = pair
    differing, elements, worst_name, worst = 0, 0, None, 0.0
    for name in sorted(ta):
        va, vb = ta[name][2], tb[name][2]
        elements += len(va)
        if ta[name][3] == tb[name][3]:
            continue
        # raw bytes differ: count the elements whose bits differ (NaN-safe, -0.0 is not +0.0)
        size = len(ta[name][3]) // max(len(va), 1)
        raw_a, raw_b = ta[name][3], tb[name][3]
        differing += sum(1 for i in range(len(va)) if raw_a[i * size:(i + 1) * size] != raw_b[i * size:(i + 1) * size])
        diff, _ = diffs(va, vb)
        if worst_name is None or diff > worst:
            worst_name, worst = name, diff
    ok = differing == 0
    extra = "" if ok else f", max |diff| {worst:.3e} in {worst_name}"
    print(f"dequant {a.a} vs {a.b}: {len(ta)} tensors, {elements} elements, {differing} not bit-identical{extra} -> {'OK' if ok else 'MISMATCH'}")
    return 0 if ok else 1


def cmd_grads(a):
    pair = read_pair(a.a, a.b, "grads")
    if pair is None:
        return 1
    ta, tb = pair
    worst_name, worst, worst_abs = None, -1.0, 0.0
    for name in sorted(ta):
        diff, scale = diffs(ta[name][2], tb[name][2])
        rel = relative(diff, scale)
        if rel > worst:
            worst_name, worst, worst_abs = name, rel, diff
    ok = worst <= a.rel
    print(f"grads {a.a} vs {a.b}: {len(ta)} tensors, max relative diff {worst:.3e} (max |diff| {worst_abs:.3e}, in {worst_name}), "
          f"tolerance {a.rel:g} -> {'OK' if ok else 'MISMATCH'}")
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
    lg = sub.add_parser("logits")
    lg.add_argument("a")
    lg.add_argument("b")
    lg.add_argument("--tol", type=float, default=1e-4)
    dq = sub.add_parser("dequant")
    dq.add_argument("a")
    dq.add_argument("b")
    gr = sub.add_parser("grads")
    gr.add_argument("a")
    gr.add_argument("b")
    gr.add_argument("--rel", type=float, default=1e-5)
    a = p.parse_args()
    return {"ids": cmd_ids, "tensors": cmd_tensors, "logits": cmd_logits, "dequant": cmd_dequant, "grads": cmd_grads}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
