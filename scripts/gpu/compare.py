#!/usr/bin/env python3
"""Comparisons for scripts/gpu/run-gpu.sh: a CUDA result against the CPU result of the same run.

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

  peft-logits  OURS.safetensors PEFT.json [--tol 1e-4]
      `finqlora debug dump-logits --adapter` against tests/fixtures/peft/peft_crosscheck.py's logits JSON for the same
      prompt ids (the JSON's prompt equal to OURS' input_ids): max |a - b| of every position at most --tol.
  ids-of    FILE.safetensors
      prints a dump-logits file's input_ids as "1,2,3" (for peft_crosscheck.py logits --ids).
  bench     OURS.json PEER.json
      `FinQLoRA.Bench train --device ... --json` against bench/peers/peft_lora_step.py --json, row by row (batch and
      checkpointing): ours/PEFT step time (goal <= 1.3) and peak memory, NVML against NVML (goal <= 0.5); PEFT's
      max_memory_allocated and max_memory_reserved beside them. Exit 1 when a goal is not met or a row is missing.
  memory    OURS.json [--tol 0.10]
      `FinQLoRA.Bench memory --device ... --json`: the planner's inference figure against the measured peak at each
      bit width, |planned / measured - 1| at most --tol; the seed's table beside them.

Each prints lines ending in OK or MISMATCH (MET or NOT MET for the goals), for the run's summary.
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


def cmd_peft_logits(a):
    ours = read_safetensors(a.a)
    with open(a.b) as f:
        peft = json.load(f)
    if "logits" not in ours or "input_ids" not in ours:
        print(f"peft-logits {a.a}: no 'logits' and 'input_ids' (not a dump-logits file) -> MISMATCH")
        return 1
    ids = ours["input_ids"][2]
    prompts = [p for p, _ in enumerate(peft["prompt_ids"]) if peft["prompt_ids"][p] == ids]
    if not prompts:
        print(f"peft-logits {a.b}: no prompt with our input_ids {ids[:8]}... -> MISMATCH")
        return 1
    theirs = [v for position in peft["logits"][prompts[0]] for v in position]
    if len(theirs) != len(ours["logits"][2]):
        print(f"peft-logits: {len(ours['logits'][2])} logits vs PEFT's {len(theirs)} -> MISMATCH")
        return 1
    diff, scale = diffs(theirs, ours["logits"][2])
    ok = diff <= a.tol
    print(f"peft-logits {a.a} vs PEFT {a.b}: {len(ids)} positions, max |diff| {diff:.3e}, relative {relative(diff, scale):.3e}, "
          f"tolerance {a.tol:g} -> {'OK' if ok else 'MISMATCH'}")
    return 0 if ok else 1


def cmd_ids_of(a):
    t = read_safetensors(a.a)
    print(",".join(str(int(v)) for v in t["input_ids"][2]))
    return 0


GIB = 1024 ** 3


def cmd_bench(a):
    with open(a.a) as f:
        ours = json.load(f)
    with open(a.b) as f:
        peer = json.load(f)
    peer_rows = {(r.get("batch"), bool(r.get("grad_checkpointing"))): r for r in peer.get("train", [])}
    failed = 0
    print("| batch | grad ckpt | ours 4-bit step s | PEFT bf16 step s | ours/PEFT time | ours peak GiB (NVML) | PEFT peak GiB (NVML) | ours/PEFT memory | PEFT allocated / reserved GiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in ours["rows"]:
        if r.get("bits", 4) != 4 and "error" not in r:
            continue
        key = (r.get("batch"), bool(r.get("grad_checkpointing")))
        p = peer_rows.get(key)
        gc = "on" if key[1] else "off"
        if "error" in r or p is None or "error" in p:
            why = r.get("error") or (p or {}).get("error") or "no PEFT row"
            print(f"| {key[0]} | {gc} | {why} | | | | | | |")
            failed += 1
            continue
        time_ratio = r["step_s"] / p["step_s"]
        ours_gib = r["peak_bytes"] / GIB
        peer_gib = p.get("peak_nvml_gib")
        mem_ratio = ours_gib / peer_gib if peer_gib else float("nan")
        print(f"| {key[0]}x{r['seq']} | {gc} | {r['step_s']:.3f} | {p['step_s']:.3f} | {time_ratio:.2f} | {ours_gib:.2f} | "
              f"{peer_gib if peer_gib is None else f'{peer_gib:.2f}'} | {mem_ratio:.2f} | {p['peak_allocated_gib']:.2f} / {p['peak_reserved_gib']:.2f} |")
        met_t, met_m = time_ratio <= 1.3, mem_ratio <= 0.5
        print(f"goal batch {key[0]}, checkpointing {gc}: 4-bit step <= 1.3x PEFT's bf16 step: {time_ratio:.2f} -> {'MET' if met_t else 'NOT MET'}; "
              f"peak memory <= 0.5x PEFT's: {mem_ratio:.2f} -> {'MET' if met_m else 'NOT MET'}")
        failed += (not met_t) + (not met_m)
    return 1 if failed else 0


def cmd_memory(a):
    with open(a.a) as f:
        ours = json.load(f)
    failed = 0
    for r in ours["rows"]:
        seed = f", seed's table {r['seed_table_gb']:.1f} GB" if "seed_table_gb" in r else ""
        if "error" in r:
            print(f"memory {r.get('bits')}-bit: measurement failed ({r['error']}) -> MISMATCH")
            failed += 1
            continue
        ratio = r["planned_bytes"] / r["peak_bytes"]
        ok = abs(ratio - 1) <= a.tol
        failed += not ok
        print(f"memory {r['bits']}-bit inference ({ours['shape']}, {ours['device']}): planned {r['planned_bytes'] / 1e9:.2f} GB "
              f"({r['planned_bytes'] / GIB:.2f} GiB), measured {r['peak_bytes'] / 1e9:.2f} GB ({r['peak_bytes'] / GIB:.2f} GiB; "
              f"{r['memory_source']}){seed}; planned/measured {ratio:.3f}, "
              f"tolerance {a.tol:g} -> {'OK' if ok else 'MISMATCH'}")
    return 1 if failed else 0


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
    pl = sub.add_parser("peft-logits")
    pl.add_argument("a")
    pl.add_argument("b")
    pl.add_argument("--tol", type=float, default=1e-4)
    io = sub.add_parser("ids-of")
    io.add_argument("a")
    bn = sub.add_parser("bench")
    bn.add_argument("a")
    bn.add_argument("b")
    mm = sub.add_parser("memory")
    mm.add_argument("a")
    mm.add_argument("--tol", type=float, default=0.10)
    a = p.parse_args()
    return {"ids": cmd_ids, "tensors": cmd_tensors, "logits": cmd_logits, "dequant": cmd_dequant, "grads": cmd_grads,
            "peft-logits": cmd_peft_logits, "ids-of": cmd_ids_of, "bench": cmd_bench, "memory": cmd_memory}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
