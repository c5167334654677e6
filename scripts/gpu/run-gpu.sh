#!/usr/bin/env bash
# The one prepared GPU run of issue 27, for a machine with one NVIDIA GPU (an H100 or an H200), Python + PyTorch (CUDA)
# + transformers + peft, and no .NET SDK, no NuGet, no network. Not yet run on any GPU.
#
#   OUT=<results folder> scripts/gpu/run-gpu.sh           # from the repository root; needs dist/gpu/finqlora-gpu.tar.xz
#                                                         # (scripts/gpu/bundle.sh) beside the working tree
# Optional: FINQLORA_SHIM_DIR=<folder with a libLibTorchSharp.so built against this machine's libtorch> (tried after
# the NuGet shim of the bundle, which is tried first: item 4), RUN_BUDGET_S (default 540), RUN_PARTS (default
# "correctness peft train memory decode": the parts after the machine and shim steps, so that the plan can be split
# over two calls of at most 10 minutes each; a part left out is logged as SKIP "not in RUN_PARTS").
#
# Rehearsal without a GPU (RUN_DEVICE=cpu): every step runs with cpu in place of cuda (the comparisons are then cpu
# against cpu: it checks this script, not the GPU), and the benchmarks on a tiny random model. It takes the built
# programs instead of the bundle; a default build carries its own libtorch, which then serves as "the machine's":
#   RUN_DEVICE=cpu TORCH_LIB=<the finqlora build's folder> FINQLORA_NUGET_SHIM_DIR=<TorchSharp's native folder> \
#   FINQLORA_CLI=<finqlora apphost> FINQLORA_BENCH=<FinQLoRA.Bench apphost> FINQLORA_MODELS=<shared/models> \
#   OUT=/tmp/rehearsal scripts/gpu/run-gpu.sh
# (tests/FinQLoRA.Tests/Scripts/GpuRunRehearsalTests.cs runs it so.) Steps that need Python's torch/peft, which a
# rehearsal machine may lack, are skipped there with a reason starting "rehearsal:"; on the GPU machine they fail.
#
# Every step logs one line "### PASS|FAIL|SKIP: <step> (<seconds> s)[: reason]" and is recorded in $OUT/steps.tsv;
# every comparison's verdict goes to $OUT/verdicts.txt; everything printed goes to $OUT/run.log; $OUT/summary.md
# gathers them. Each step has its own time limit, and no step stops the others. Exit 0 when no step failed, else 1.
#
# The plan (issue 27), in order:
#   1  the machine; the NuGet shim against this libtorch (symbols, then loading it); the shim search
#   2  cuda against cpu: logits of stories260K (HF and GGUF) within 1e-4; greedy ids identical; NF4+DQ/FP4/int8
#      dequantization bit-identical; LoRA/DoRA gradients within 1e-5 relative; 20 training steps (4-bit, r4, dropout 0)
#      within 1e-4; NCCL with one rank; `serve` answering /v1/chat/completions on the device as on the cpu
#   3  PEFT loads our adapter and reproduces our logits; ours reproduces a PEFT-made LoRA and DoRA adapter's logits
#   4  8B-shaped Llama: our QLoRA step (batch 4 and 16 x 512, checkpointing off and on) next to PyTorch + PEFT (bf16,
#      same LoRA) in this run, with the goals (time <= 1.3x, peak memory <= 0.5x); inference memory at 16/8/4 bits next
#      to `finqlora memory` and the seed's table (15.0 / 8.6 / 5.6 GB); decode tokens/s
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
parts=" ${RUN_PARTS:-correctness peft train memory decode} "
for part in $parts; do
    case $part in correctness | peft | train | memory | decode) ;; *) echo "RUN_PARTS: unknown part '$part'; the parts are correctness peft train memory decode" >&2; exit 2 ;; esac
done
# in_part PART: whether RUN_PARTS has PART
in_part() { [[ "$parts" == *" $1 "* ]]; }
: "${OUT:?set OUT to the folder the results go to}"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
exec > >(tee -a "$OUT/run.log") 2>&1

budget=${RUN_BUDGET_S:-540}
t0=$(date +%s)
device=${RUN_DEVICE:-cuda}
# one folder of this run's own (named by its start time and pid): nothing of an earlier run is read or deleted
# mktemp makes it new (never an existing folder), so the rm -rf at the end removes only what this run made
work=$(mktemp -d "${TMPDIR:-/tmp}/finqlora-gpu-run.$t0.XXXXXX")
mkdir "$work/c"
bundle="$repo/dist/gpu/finqlora-gpu.tar.xz"
rehearsal=no
[ "$device" = cpu ] && rehearsal=yes
export OUT repo work device t0 rehearsal bundle
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
printf 'step\tresult\tseconds\tnote\n' >"$OUT/steps.tsv"
: >"$OUT/verdicts.txt"

# The programs and models: the bundle's (unpacked by the "unpack bundle" step) or, in a rehearsal, the built ones.
app="$work/finqlora-gpu/app"
cli=${FINQLORA_CLI:-"$app/finqlora"}
benchexe=${FINQLORA_BENCH:-"$app/FinQLoRA.Bench"}
models=${FINQLORA_MODELS:-"$work/finqlora-gpu/models"}
nuget_shim=${FINQLORA_NUGET_SHIM_DIR:-"$work/finqlora-gpu/shim-nuget"}
export cli benchexe models nuget_shim

# Benchmark sizes: Llama 3.1 8B's shape on the GPU; a tiny model in a rehearsal (the 8B shape is far too big for it).
if [ "$rehearsal" = yes ]; then
    bench_shape=tiny train_shapes=2x64 gen_batches=1,4 gen_prompt=32 gen_decode=8 context=128 peer_layers=2
else
    bench_shape=8b train_shapes=4x512,16x512 gen_batches=1,16 gen_prompt=448 gen_decode=64 context=512 peer_layers=32
fi
export bench_shape train_shapes gen_batches gen_prompt gen_decode context peer_layers

record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${4:-}" >>"$OUT/steps.tsv"; }
failed=0

# A step ends in one of three ways: exit 0 = PASS; exit 77 after `skip_because REASON` = SKIP with the reason;
# anything else = FAIL (124: its time limit).
skip_because() { echo "$1" >"$work/skip-reason"; echo "SKIP: $1"; return 77; }

# not_run NAME REASON: a step that cannot run at all (its input is missing), logged and recorded as SKIP.
not_run() {
    echo
    echo "### SKIP: $1 (0 s): $2"
    record "$1" SKIP 0 "$2"
}

# step NAME LIMIT_S FUNCTION [ARGS...]: runs an exported function in its own bash under `timeout`, logs and records
# PASS, FAIL or SKIP with the seconds, and never stops the script. A step gets at most what is left of the budget.
step() {
    local name=$1 limit=$2
    shift 2
    local left=$((budget - ($(date +%s) - t0)))
    if [ "$left" -lt 10 ]; then
        echo; echo "### FAIL: $name (0 s): the run's time budget of ${budget}s is spent"
        record "$name" FAIL 0 "time budget of ${budget}s spent"
        failed=$((failed + 1))
        return 1
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    echo
    echo "=== $name (limit ${limit}s, $(($(date +%s) - t0))s into the run) ==="
    rm -f "$work/skip-reason"
    local start rc seconds result note=""
    start=$(date +%s)
    timeout -k 5 "$limit" bash -c '"$@"' _ "$@"
    rc=$?
    seconds=$(($(date +%s) - start))
    if [ "$rc" -eq 0 ]; then
        result=PASS
    elif [ "$rc" -eq 77 ] && [ -f "$work/skip-reason" ]; then
        result=SKIP note=$(cat "$work/skip-reason")
    else
        result=FAIL note="rc=$rc"
        [ "$rc" -eq 124 ] && note="timed out after ${limit}s"
        failed=$((failed + 1))
    fi
    record "$name" "$result" "$seconds" "$note"
    echo "### $result: $name ($seconds s)${note:+: $note}"
    return "$rc"
}

# Every comparison line (compare.py, peft_crosscheck.py) is kept for the summary.
verdict() { tee -a "$OUT/verdicts.txt"; }

# Python with torch, transformers and peft, or the reason there is none: a rehearsal skips (its machine may lack them),
# the GPU machine fails (it must have them).
need_torch() {
    local why
    why=$(python3 -c 'import torch, transformers, peft' 2>&1) && return 0
    why=$(echo "$why" | tail -1)
    if [ "$rehearsal" = yes ]; then skip_because "rehearsal: python has no torch/transformers/peft here ($why); the GPU machine has them"; return; fi
    echo "python3 cannot import torch, transformers and peft: $why"
    return 1
}

export -f record skip_because verdict need_torch

# ---------------------------------------------------------------- step 1: the machine, the bundle, the shim

machine() {
    echo "device under test: $device; rehearsal: $rehearsal"
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi
        nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    else
        echo "no nvidia-smi on this machine"
    fi
    lscpu | grep -E 'Model name|^CPU\(s\)' || true
    python3 - <<'EOF' || echo "(python3 has no torch here)"
import os
for name in ("transformers", "peft", "safetensors"):
    try:
        print(name, __import__(name).__version__)
    except ImportError as e:
        print(name, "missing:", e)
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())
print("cuda available", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
print("cmake_prefix_path", torch.utils.cmake_prefix_path)
lib = os.path.join(os.path.dirname(torch.__file__), "lib")
print("torch lib", lib)
print("libs", " ".join(sorted(f for f in os.listdir(lib) if f.endswith(".so"))))
EOF
    if [ -n "${TORCH_LIB:-}" ]; then
        echo "$TORCH_LIB" >"$work/torchlib"
    else
        python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))' >"$work/torchlib.tmp" &&
            mv "$work/torchlib.tmp" "$work/torchlib"
    fi
    [ -s "$work/torchlib" ] || { echo "no libtorch: set TORCH_LIB, or install PyTorch"; return 1; }
    echo "libtorch under test: $(cat "$work/torchlib")"
}

unpack() {
    if [ -n "${FINQLORA_CLI:-}" ]; then
        [ "$rehearsal" = yes ] && { skip_because "rehearsal: the built programs are used (FINQLORA_CLI=$FINQLORA_CLI), not the bundle"; return; }
        echo "FINQLORA_CLI is set: the bundle is not used"
        return 1
    fi
    [ -f "$bundle" ] || { echo "no $bundle: run scripts/gpu/bundle.sh on a machine with the .NET SDK and carry dist/gpu"; return 1; }
    tar -xJf "$bundle" -C "$work" && cat "$work/finqlora-gpu/BUNDLE.txt"
}

# Item 4, first: how far TorchSharp's NuGet shim (built for libtorch 2.10) is from this libtorch: the C++ symbols it
# needs that no torch library here defines (needs nm, binutils).
shim_symbols() {
    command -v nm >/dev/null || { echo "no nm on this machine"; return 1; }
    local torch_lib shim="$nuget_shim/libLibTorchSharp.so"
    torch_lib=$(cat "$work/torchlib")
    [ -f "$shim" ] || { echo "no NuGet shim at $shim"; return 1; }
    # strong undefined symbols only (type U): weak ones (TLS init functions, for one) may stay unresolved
    nm -D --undefined-only --format=posix "$shim" | awk '$2 == "U" {print $1}' | grep -v '@' | sort -u >"$work/undefined"
    for lib in libc10.so libc10_cuda.so libtorch_cpu.so libtorch_cuda.so libtorch.so; do
        [ -f "$torch_lib/$lib" ] && nm -D --defined-only --format=posix "$torch_lib/$lib" | awk '{print $1}' | sed 's/@.*//'
    done | sort -u >"$work/defined"
    comm -23 "$work/undefined" "$work/defined" | grep -E '^_Z' >"$OUT/shim-nuget-missing-symbols.txt"
    echo "NuGet shim (libtorch 2.10) against $torch_lib: $(wc -l <"$work/undefined") undefined unversioned symbols, $(wc -l <"$OUT/shim-nuget-missing-symbols.txt") C++ ones not defined by this libtorch (list: shim-nuget-missing-symbols.txt)" | verdict
    head -20 "$OUT/shim-nuget-missing-symbols.txt" | c++filt
}

# try_shim FOLDER: `finqlora version` with this libtorch and the shim in FOLDER; with cuda it must report CUDA. The
# dynamic linker's message for a shim that does not load is printed (RTLD_NOW: it names the first missing symbol).
try_shim() {
    local torch_lib
    torch_lib=$(cat "$work/torchlib")
    [ -f "$1/libLibTorchSharp.so" ] || { echo "shim candidate $1: no libLibTorchSharp.so"; return 1; }
    echo "shim candidate $1 against $torch_lib:"
    FINQLORA_LIBTORCH_DIR="$torch_lib:$1" "$cli" version >"$work/version.txt" 2>&1
    local rc=$?
    cat "$work/version.txt"
    [ "$rc" -eq 0 ] || { echo "-> does not load (exit $rc)" | verdict; return 1; }
    if [ "$device" = cuda ] && ! grep -q 'cuda available: True' "$work/version.txt"; then
        echo "-> loads, but reports no CUDA" | verdict
        return 1
    fi
    echo "-> loads$([ "$device" = cuda ] && echo ' and reports CUDA')" | verdict
    echo "$torch_lib:$1" >"$work/libtorchdir.$(basename "$1")"
}

# The NuGet shim first (item 4), then the shim built on this machine, if any: the first that works is used.
find_shim() {
    local cand
    for cand in "$nuget_shim" ${FINQLORA_SHIM_DIR:+"$FINQLORA_SHIM_DIR"} "$repo/dist/gpu/shim"; do
        if try_shim "$cand"; then
            cp "$work/libtorchdir.$(basename "$cand")" "$work/libtorchdir"
            echo "using the shim in $cand"
            return 0
        fi
    done
    echo "no shim loads against $(cat "$work/torchlib") with $device"
    return 1
}

export -f machine unpack shim_symbols try_shim find_shim

step "machine" 60 machine
step "unpack bundle" 90 unpack
if [ -s "$work/torchlib" ] && [ -x "$cli" ]; then
    step "shim: NuGet shim's symbols against this libtorch" 30 shim_symbols
    step "shim: NuGet shim loads against this libtorch" 60 try_shim "$nuget_shim"
    step "shim: search (NuGet, FINQLORA_SHIM_DIR, dist/gpu/shim)" 120 find_shim
else
    for s in "shim: NuGet shim's symbols against this libtorch" "shim: NuGet shim loads against this libtorch" "shim: search (NuGet, FINQLORA_SHIM_DIR, dist/gpu/shim)"; do
        not_run "$s" "no libtorch lib folder or no finqlora program (see the machine and unpack steps)"
    done
fi
have_shim=no
[ -s "$work/libtorchdir" ] && have_shim=yes
no_shim="no LibTorchSharp shim loads against this libtorch (see the shim steps)"
# ours_step NAME LIMIT FUNCTION [ARGS...]: a step that needs FinQLoRA on the device (a shim that loads)
ours_step() { if [ "$have_shim" = yes ]; then step "$@"; else not_run "$1" "$no_shim"; fi; }

# ---------------------------------------------------------------- step 2: correctness, the device against cpu

# run_app PROGRAM [ARGS...]: a program of the bundle (built with -p:TorchDevice=none, no libtorch of its own) runs on
# the libtorch and shim the shim search chose; a default build, which carries its own libtorch beside it (a rehearsal's),
# runs on that one, because two libtorch copies in one process abort at their first registration.
run_app() {
    local exe=$1
    shift
    if [ -f "$(dirname "$exe")/libtorch_cpu.so" ]; then "$exe" "$@"; else FINQLORA_LIBTORCH_DIR=$(cat "$work/libtorchdir") "$exe" "$@"; fi
}
finq() { run_app "$cli" "$@"; }

prompts() {
    printf '%s\n' '{"prompt":"Once upon a time"}' '{"prompt":"The little dog"}' '{"prompt":"Lily wanted to"}' \
        '{"prompt":"One day, a big"}' >"$work/c/prompts.jsonl"
    local i
    for i in 1 2 3 4 5 6 7 8; do
        echo "{\"context\":\"Once upon a time there was a little dog number $i.\",\"target\":\" It was happy and played all day.\"}"
    done >"$work/c/train.jsonl"
}

# gen_ids NAME MODEL [generate options]: greedy ids on cpu (ref) and on $device (dev), compared token for token.
gen_ids() {
    local name=$1 model=$2
    shift 2
    local run d
    for run in ref dev; do
        d=cpu
        [ "$run" = dev ] && d=$device
        finq generate --model "$model" --prompts "$work/c/prompts.jsonl" --greedy --max-new-tokens 48 --batch-size 4 \
            --json --device "$d" "$@" >"$work/c/$name.$run.jsonl" || return 1
    done
    cp "$work/c/$name.dev.jsonl" "$OUT/generate-$name.$device.jsonl"
    python3 "$repo/scripts/gpu/compare.py" ids "$work/c/$name.ref.jsonl" "$work/c/$name.dev.jsonl" | verdict
    return "${PIPESTATUS[0]}"
}

# train_cmp NAME [train options]: 20 steps (4-bit NF4+DQ base, r4 on q,k,v, dropout 0, f32) on cpu (ref) and on
# $device (dev); the final adapters must agree within 1e-4.
train_cmp() {
    local name=$1
    shift
    local run d
    for run in ref dev; do
        d=cpu
        [ "$run" = dev ] && d=$device
        finq train --model "$models/stories260K-hf" --data "$work/c/train.jsonl" --out "$work/c/$name.$run" --bits 4 \
            --rank 4 --alpha 32 --dropout 0 --targets q_proj,k_proj,v_proj --max-steps 20 --batch-size 4 \
            --max-seq-len 64 --lr 1e-3 --warmup-steps 0 --seed 1 --save-every 0 --dtype f32 --device "$d" "$@" || return 1
        cp "$work/c/$name.$run/run.json" "$OUT/train-$name.$run-$d.run.json"
    done
    python3 "$repo/scripts/gpu/compare.py" tensors --tol 1e-4 "$work/c/$name.ref/adapter/adapter_model.safetensors" \
        "$work/c/$name.dev/adapter/adapter_model.safetensors" | verdict
    return "${PIPESTATUS[0]}"
}

# NCCL with one rank: bootstrapped over MPI (docs/multi-gpu.md), so it needs cuda, mpirun and libmpi on this machine.
nccl_one_rank() {
    [ "$device" = cuda ] || { skip_because "rehearsal: NCCL needs cuda"; return; }
    command -v mpirun >/dev/null || { skip_because "no mpirun on this machine: NCCL is bootstrapped over MPI"; return; }
    [ -d "$work/c/lora.dev" ] || { echo "needs the LoRA training step's cuda adapter"; return 1; }
    FINQLORA_COMM_BACKEND=nccl FINQLORA_LIBTORCH_DIR=$(cat "$work/libtorchdir") mpirun --allow-run-as-root -np 1 \
        -x FINQLORA_COMM_BACKEND -x FINQLORA_LIBTORCH_DIR "$cli" train --model "$models/stories260K-hf" \
        --data "$work/c/train.jsonl" --out "$work/c/nccl" --bits 4 --rank 4 --alpha 32 --dropout 0 \
        --targets q_proj,k_proj,v_proj --max-steps 20 --batch-size 4 --max-seq-len 64 --lr 1e-3 --warmup-steps 0 \
        --seed 1 --save-every 0 --dtype f32 --device cuda || return 1
    python3 "$repo/scripts/gpu/compare.py" tensors --tol 1e-6 "$work/c/lora.dev/adapter/adapter_model.safetensors" \
        "$work/c/nccl/adapter/adapter_model.safetensors" | verdict
    return "${PIPESTATUS[0]}"
}

# dump_cmp NAME "COMPARE-MODE [OPTIONS]" DEBUG-COMMAND [its options]: `finqlora debug DEBUG-COMMAND` on cpu (ref) and on
# $device (dev), the two safetensors compared by compare.py in that mode; the device's record is kept.
dump_cmp() {
    local name=$1 compare=$2
    shift 2
    local run d
    for run in ref dev; do
        d=cpu
        [ "$run" = dev ] && d=$device
        finq debug "$@" --device "$d" --out "$work/c/$name.$run.safetensors" || return 1
    done
    cp "$work/c/$name.dev.safetensors.json" "$OUT/dump-$name.$device.json"
    # shellcheck disable=SC2086 # the mode and its options are separate words
    python3 "$repo/scripts/gpu/compare.py" $compare "$work/c/$name.ref.safetensors" "$work/c/$name.dev.safetensors" | verdict
    return "${PIPESTATUS[0]}"
}

# stories260K quantized on the cpu into $work/c/q-KIND, so that the device dumps decode the very codes the cpu decodes
# (the check is the dequantization, not the quantizer).
quantize_all() {
    finq quantize --model "$models/stories260K-hf" --out "$work/c/q-nf4" --bits 4 --quant nf4 --double-quant true &&
        finq quantize --model "$models/stories260K-hf" --out "$work/c/q-fp4" --bits 4 --quant fp4 --double-quant false &&
        finq quantize --model "$models/stories260K-hf" --out "$work/c/q-int8" --bits 8
}

# grads_cmp NAME [train options]: a start adapter from 3 cpu training steps (B is then not zero, so A's gradients are
# not either), then one step's gradients on the first 4 examples (4-bit NF4+DQ base, f32) on cpu and on $device.
grads_cmp() {
    local name=$1
    shift
    local start="$work/c/$name.start"
    finq train --model "$models/stories260K-hf" --data "$work/c/train.jsonl" --out "$start" --bits 4 \
        --rank 4 --alpha 32 --dropout 0 --targets q_proj,k_proj,v_proj --max-steps 3 --batch-size 4 --max-seq-len 64 \
        --lr 1e-2 --warmup-steps 0 --seed 1 --save-every 0 --dtype f32 --device cpu "$@" >/dev/null || return 1
    dump_cmp "grads-$name" "grads --rel 1e-5" dump-grads --model "$models/stories260K-hf" --data "$work/c/train.jsonl" \
        --adapter "$start/adapter" --bits 4 --quant nf4 --double-quant true --dtype f32 --batch-size 4 \
        --max-seq-len 64 --seed 1
}

# stories260K with a chat template: its tokenizer has none, so chat would be refused. A copy gets Mistral v0.1's
# template (its [INST] is text, <s> and </s> are stories' own tokens) from the test fixture that records it.
chat_model() {
    cp -r "$models/stories260K-hf" "$work/c/stories-chat" &&
        python3 - "$repo/tests/fixtures/chat/mistral-v1.json" "$work/c/stories-chat/tokenizer_config.json" <<'EOF'
import json, sys
template = json.load(open(sys.argv[1]))["tokenizer_config"]["chat_template"]
path = sys.argv[2]
config = json.load(open(path))
config["chat_template"] = template
json.dump(config, open(path, "w"), indent=1)
print(f"{path}: chat_template of Mistral-7B-Instruct-v0.1 added")
EOF
}

# serve_on DEVICE OUT_JSON: `finqlora serve` on DEVICE (a port of its choosing), one greedy /v1/chat/completions
# request through python's urllib (the OpenAI wire format; the `openai` package may be missing), the server stopped.
serve_on() {
    local d=$1 out=$2 log="$work/c/serve.$1.log" pid url i
    run_app "$cli" serve --model "$work/c/stories-chat" --device "$d" --dtype f32 \
        --port 0 --max-model-len 256 >"$log" 2>&1 &
    pid=$!
    for i in $(seq 1 120); do
        url=$(grep -o 'http://[0-9.]*:[0-9]*' "$log" | head -1)
        [ -n "$url" ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    cat "$log"
    if [ -z "$url" ]; then echo "serve on $d printed no address"; kill "$pid" 2>/dev/null; return 1; fi
    python3 - "$url" "$out" <<'EOF'
import json, sys, urllib.request
url, out = sys.argv[1], sys.argv[2]
body = {"model": "stories-chat", "messages": [{"role": "user", "content": "Tell me a story about a dog."}],
        "max_tokens": 24, "temperature": 0}
req = urllib.request.Request(url + "/v1/chat/completions", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=60) as r:
    status, answer = r.status, json.load(r)
json.dump(answer, open(out, "w"), indent=1)
choice = answer["choices"][0]
assert status == 200 and answer["object"] == "chat.completion", (status, answer.get("object"))
assert choice["message"]["role"] == "assistant" and isinstance(choice["message"]["content"], str), choice
assert answer["usage"]["completion_tokens"] > 0, answer["usage"]
print(f"{url}: 200 chat.completion, finish_reason {choice['finish_reason']}, {answer['usage']['completion_tokens']} tokens: {choice['message']['content']!r}")
EOF
    local rc=$?
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return $rc
}

# serve on cpu and on $device: both answer, and the greedy answers are the same text.
serve_cmp() {
    chat_model || return 1
    serve_on cpu "$work/c/chat.cpu.json" || return 1
    serve_on "$device" "$work/c/chat.dev.json" || return 1
    cp "$work/c/chat.dev.json" "$OUT/serve-chat.$device.json"
    python3 - "$work/c/chat.cpu.json" "$work/c/chat.dev.json" <<'EOF' | verdict
import json, sys
a, b = (json.load(open(p))["choices"][0]["message"]["content"] for p in sys.argv[1:3])
print(f"serve /v1/chat/completions, greedy: {len(b)} characters on the device, {'identical to' if a == b else 'DIFFERENT from'} cpu's -> {'OK' if a == b else 'MISMATCH'}")
sys.exit(0 if a == b else 1)
EOF
    return "${PIPESTATUS[0]}"
}

export -f run_app finq prompts gen_ids train_cmp nccl_one_rank dump_cmp quantize_all grads_cmp chat_model serve_on serve_cmp

story="Once upon a time, there was a little girl named Lily. She loved to play outside"
export story
correctness=(
    "logits $device = cpu: stories260K HF, f32"
    "logits $device = cpu: stories260K GGUF, f32"
    "generate ids $device = cpu: stories260K HF, f32"
    "generate ids $device = cpu: stories260K GGUF, f32"
    "quantize on cpu: NF4+DQ, FP4, int8"
    "dequantized $device = cpu, bit-identical: NF4+DQ"
    "dequantized $device = cpu, bit-identical: FP4"
    "dequantized $device = cpu, bit-identical: int8"
    "generate ids $device = cpu: 4-bit NF4+DQ"
    "generate ids $device = cpu: 4-bit FP4"
    "generate ids $device = cpu: 8-bit LLM.int8"
    "gradients $device = cpu: LoRA, 4-bit"
    "gradients $device = cpu: DoRA, 4-bit"
    "train 20 steps $device = cpu: LoRA, 4-bit"
    "train 20 steps $device = cpu: DoRA, 4-bit"
    "NCCL, one rank"
    "serve on $device: /v1/chat/completions, same answer as cpu"
)
if ! in_part correctness; then
    for s in "${correctness[@]}"; do not_run "$s" "not in RUN_PARTS"; done
elif [ "$have_shim" = yes ]; then
    step "data for the checks" 10 prompts
    step "${correctness[0]}" 60 dump_cmp logits-hf "logits --tol 1e-4" dump-logits --model "$models/stories260K-hf" --dtype f32 --prompt "$story"
    step "${correctness[1]}" 60 dump_cmp logits-gguf "logits --tol 1e-4" dump-logits --model "$models/stories260K/stories260K.gguf" --dtype f32 --prompt "$story"
    step "${correctness[2]}" 60 gen_ids hf-f32 "$models/stories260K-hf" --dtype f32
    step "${correctness[3]}" 60 gen_ids gguf-f32 "$models/stories260K/stories260K.gguf" --dtype f32
    step "${correctness[4]}" 60 quantize_all
    step "${correctness[5]}" 60 dump_cmp dequant-nf4 dequant dump-dequant --model "$work/c/q-nf4"
    step "${correctness[6]}" 60 dump_cmp dequant-fp4 dequant dump-dequant --model "$work/c/q-fp4"
    step "${correctness[7]}" 60 dump_cmp dequant-int8 dequant dump-dequant --model "$work/c/q-int8"
    step "${correctness[8]}" 60 gen_ids nf4 "$models/stories260K-hf" --dtype f32 --bits 4 --quant nf4 --double-quant true
    step "${correctness[9]}" 60 gen_ids fp4 "$models/stories260K-hf" --dtype f32 --bits 4 --quant fp4 --double-quant false
    step "${correctness[10]}" 60 gen_ids int8 "$models/stories260K-hf" --dtype f32 --bits 8
    step "${correctness[11]}" 90 grads_cmp lora
    step "${correctness[12]}" 90 grads_cmp dora --use-dora true
    step "${correctness[13]}" 90 train_cmp lora
    step "${correctness[14]}" 90 train_cmp dora --use-dora true
    step "${correctness[15]}" 60 nccl_one_rank
    step "${correctness[16]}" 90 serve_cmp
else
    for s in "${correctness[@]}"; do not_run "$s" "$no_shim"; done
fi

# ---------------------------------------------------------------- step 3: PEFT interop with this machine's PEFT

fx="$repo/tests/fixtures/peft"
export fx

# PEFT loads our fixture adapter and reproduces our logits (cpu, and cuda on the GPU machine).
peft_loads_ours() {
    need_torch || return
    local d devices=(cpu) rc=0
    [ "$device" = cuda ] && devices+=(cuda)
    for d in "${devices[@]}"; do
        python3 "$fx/peft_crosscheck.py" logits --model "$models/stories260K-hf" --adapter "$fx/finqlora_made_adapter" --device "$d" \
            --out "$OUT/finqlora_adapter_via_peft.$d.json" --expect "$fx/finqlora_made_adapter/finqlora_logits.json" | verdict
        [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
    done
    return $rc
}

# peft_made KIND [--dora]: python makes a PEFT adapter on stories260K-hf with a fixed seed (kept in $OUT/fixtures for
# the C# tests); ours applies it on $device (`debug dump-logits --adapter`), PEFT computes the logits of the same ids,
# and compare.py checks every position within 1e-4.
peft_made() {
    need_torch || return
    local kind=$1 seed=0
    shift
    [ "$kind" = dora ] && seed=1
    local adapter="$OUT/fixtures/peft_made_${kind}_adapter"
    mkdir -p "$OUT/fixtures"
    python3 "$fx/peft_crosscheck.py" make --model "$models/stories260K-hf" --out "$adapter" --seed "$seed" "$@" || return 1
    rm -f "$adapter/README.md" # PEFT's model card, not needed
    finq debug dump-logits --model "$models/stories260K-hf" --adapter "$adapter" --dtype f32 --prompt "$story" \
        --device "$device" --out "$work/c/peft-$kind.ours.safetensors" || return 1
    python3 "$fx/peft_crosscheck.py" logits --model "$models/stories260K-hf" --adapter "$adapter" \
        --ids "$(python3 "$repo/scripts/gpu/compare.py" ids-of "$work/c/peft-$kind.ours.safetensors")" \
        --out "$work/c/peft-$kind.peft.json" || return 1
    python3 "$repo/scripts/gpu/compare.py" peft-logits --tol 1e-4 "$work/c/peft-$kind.ours.safetensors" "$work/c/peft-$kind.peft.json" | verdict
    return "${PIPESTATUS[0]}"
}
export -f peft_loads_ours peft_made

if ! in_part peft; then
    for s in "PEFT loads our adapter and reproduces our logits" "ours reproduces a PEFT-made LoRA adapter's logits on $device" \
        "ours reproduces a PEFT-made DoRA adapter's logits on $device"; do not_run "$s" "not in RUN_PARTS"; done
else
    step "PEFT loads our adapter and reproduces our logits" 120 peft_loads_ours
    ours_step "ours reproduces a PEFT-made LoRA adapter's logits on $device" 120 peft_made lora
    ours_step "ours reproduces a PEFT-made DoRA adapter's logits on $device" 120 peft_made dora --dora
fi

# ---------------------------------------------------------------- step 4: benchmarks on an 8B-shaped Llama

fbench() { run_app "$benchexe" "$@"; }

ours_train() {
    fbench train --device "$device" --shape "$bench_shape" --shapes "$train_shapes" --bits 4 --checkpointing both \
        --steps 3 --warmup 1 --dropout 0.1 --json "$OUT/ours-train.json"
}

peer() {
    need_torch || return
    python3 "$repo/bench/peers/peft_lora_step.py" all --layers "$peer_layers" --json "$OUT/peer.json"
}

goals() {
    [ -f "$OUT/peer.json" ] || {
        [ "$rehearsal" = yes ] && { skip_because "rehearsal: no PEFT peer figures (python has no torch here)"; return; }
        echo "no $OUT/peer.json: the peer step failed"; return 1
    }
    [ -f "$OUT/ours-train.json" ] || { echo "no $OUT/ours-train.json: our training step failed"; return 1; }
    python3 "$repo/scripts/gpu/compare.py" bench "$OUT/ours-train.json" "$OUT/peer.json" | verdict
    return "${PIPESTATUS[0]}"
}

ours_memory() {
    fbench memory --device "$device" --shape "$bench_shape" --bits 16,8,4 --context "$context" --json "$OUT/ours-memory.json"
}

planner() {
    local bits
    for bits in 16 8 4; do
        "$cli" memory --model llama-3.1-8b --bits "$bits" --device cuda --context "$context" --json >"$OUT/planner-inference-$bits.json" &&
            echo "planner, Llama 3.1 8B inference at $bits bits, context $context: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["total_gib"])' "$OUT/planner-inference-$bits.json") GiB total" || return 1
    done
    local batch
    for batch in 4 16; do
        "$cli" memory --model llama-3.1-8b --bits 4 --train --batch-size "$batch" --seq-len 512 --rank 4 \
            --targets q,k,v --device cuda --json >"$OUT/planner-train-4bit-b$batch.json" || return 1
        "$cli" memory --model llama-3.1-8b --bits 4 --train --batch-size "$batch" --seq-len 512 --rank 4 \
            --targets q,k,v --device cuda --grad-checkpointing --json >"$OUT/planner-train-4bit-b$batch-gc.json" || return 1
    done
}

# The planner within 10 % of the measured inference memory at each width (the seed's table printed beside them).
memory_goal() {
    [ -f "$OUT/ours-memory.json" ] || { echo "no $OUT/ours-memory.json: the measuring step failed"; return 1; }
    python3 "$repo/scripts/gpu/compare.py" memory --tol 0.10 "$OUT/ours-memory.json" | verdict
    local rc=${PIPESTATUS[0]}
    [ "$rehearsal" = yes ] && { skip_because "rehearsal: the planner plans GPU memory (CUDA context included); the cpu figures above are peak RSS of a tiny model, printed for the record"; return; }
    return "$rc"
}

ours_generate() {
    fbench generate --device "$device" --shape "$bench_shape" --bits 16,4 --batches "$gen_batches" --prompt "$gen_prompt" \
        --decode "$gen_decode" --json "$OUT/ours-generate.json"
}
export -f fbench ours_train peer goals ours_memory planner memory_goal ours_generate

train_steps=("ours: QLoRA step on $bench_shape ($train_shapes, checkpointing off/on), peak memory"
    "peer: PyTorch + PEFT on the 8B shape ($peer_layers layers; train, generate)"
    "goals: 4-bit step <= 1.3x PEFT's bf16 step, peak memory <= 0.5x")
memory_steps=("planner: finqlora memory for Llama 3.1 8B at 16/8/4 bits and the training runs"
    "ours: inference memory on $bench_shape at 16/8/4 bits" "goal: planner within 10% of the measured inference memory")
decode_step="ours: decode tokens/s on $bench_shape at 16/4 bits"
if in_part train; then
    ours_step "${train_steps[0]}" 240 ours_train
    step "${train_steps[1]}" 240 peer
    step "${train_steps[2]}" 30 goals
else
    for s in "${train_steps[@]}"; do not_run "$s" "not in RUN_PARTS"; done
fi
if in_part memory; then
    step "${memory_steps[0]}" 30 planner
    ours_step "${memory_steps[1]}" 180 ours_memory
    ours_step "${memory_steps[2]}" 30 memory_goal
else
    for s in "${memory_steps[@]}"; do not_run "$s" "not in RUN_PARTS"; done
fi
if in_part decode; then ours_step "$decode_step" 180 ours_generate; else not_run "$decode_step" "not in RUN_PARTS"; fi

# ---------------------------------------------------------------- summary

{
    echo "# GPU run $(date -u +%Y-%m-%dT%H:%M:%SZ), $(($(date +%s) - t0)) s, device $device (rehearsal: $rehearsal)"
    echo
    echo "commit (working tree): $(cd "$repo" && git rev-parse HEAD 2>/dev/null || echo unknown)"
    [ -f "$work/finqlora-gpu/BUNDLE.txt" ] && sed 's/^/    /' "$work/finqlora-gpu/BUNDLE.txt"
    echo
    echo "| step | result | seconds | note |"
    echo "|---|---|---|---|"
    tail -n +2 "$OUT/steps.tsv" | awk -F'\t' '{printf "| %s | %s | %s | %s |\n", $1, $2, $3, $4}'
    echo
    echo "## Verdicts"
    echo
    sed 's/^/    /' "$OUT/verdicts.txt"
    echo
    echo "## Peer (PyTorch + PEFT)"
    echo
    sed -n '/^| what /,/^$/p' "$OUT/run.log"
} >"$OUT/summary.md"
echo
cat "$OUT/summary.md"
echo "steps failed: $failed"
# The run's own folder (made above under its start time and pid, never one of another run): its temporary models
# and dumps are not results, and $OUT has what is kept.
rm -rf "$work"
# Close the pipe into tee so that it writes the last lines to run.log before the results are collected.
exec 1>&- 2>&-
sleep 1
[ "$failed" -eq 0 ]
