#!/usr/bin/env bash
# The one prepared GPU run of issue 14 (steps 1-5 as far as today's CLI allows), for a machine with an NVIDIA GPU,
# Python + PyTorch (CUDA) + transformers + peft, and no .NET SDK, no NuGet, no network. Not yet run on any GPU.
#
#   OUT=<results folder> scripts/gpu/run-h200.sh          # from the repository root; needs dist/gpu/finqlora-gpu.tar.xz
#                                                         # (scripts/gpu/bundle.sh) beside the working tree
# Optional: FINQLORA_SHIM_DIR=<folder with a libLibTorchSharp.so built against this machine's libtorch> (tried first;
# dist/gpu/shim/ is tried next, then the NuGet shim in the bundle, built for libtorch 2.10), RUN_BUDGET_S (default 540).
# Rehearsal without a GPU: RUN_DEVICE=cpu TORCH_LIB=<a CPU libtorch's lib folder> runs every FinQLoRA step with cpu in
# place of cuda (the comparisons are then cpu against cpu: it checks this script, not the GPU).
#
# Everything printed goes to $OUT/run.log; each step's exit code and seconds to $OUT/steps.tsv; the OK/MISMATCH
# verdicts and the figures to $OUT/summary.md. Every step has its own time limit and none stops the others; steps
# that need a working shim are skipped (and say so) when none loads, the Python-only ones still run.
#
# Step 2 compares $device with cpu through the hidden `finqlora debug` commands: logits of every prompt position
# (dump-logits, HF and GGUF, within 1e-4), NF4+DQ/FP4/int8 weights dequantized on the device (dump-dequant of folders
# quantized on the cpu, bit-identical) and one step's LoRA/DoRA gradients (dump-grads, within 1e-5 relative), each
# with compare.py; then greedy ids and 20 training steps.
#
# What this script does not do yet (each is named again where it would run):
#   - `serve` on the device (step 2): not written into the script yet
#   - FinQLoRA reproducing PEFT's logits for a PEFT-made adapter (step 3): `debug dump-logits --adapter` could do it,
#     but the step is not written yet; the returned fixtures are checked by the C# tests
#     (PeftMadeLoraAdapterGivesPeftsLogits, PeftMadeDoraAdapterGivesPeftsLogits) on CPU
#   - our side of the 8B benchmarks (step 4a, 4c): FinQLoRA.Bench runs on the CPU only (no --device), builds its
#     random model through a temp HF folder (the issue wants it made on the GPU), has no 8B shape, and nothing in
#     FinQLoRA or TorchSharp 0.107 reports CUDA memory (needed: peak allocated bytes, as torch.cuda.max_memory_allocated)
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
: "${OUT:?set OUT to the folder the results go to}"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
exec > >(tee -a "$OUT/run.log") 2>&1

budget=${RUN_BUDGET_S:-540}
t0=$(date +%s)
work="${TMPDIR:-/tmp}/finqlora-gpu-run"
bundle="$repo/dist/gpu/finqlora-gpu.tar.xz"
device=${RUN_DEVICE:-cuda}
export OUT repo work device t0
rm -f "$work.torchlib" "$work.libtorchdir"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
printf 'step\tresult\tseconds\tnote\n' >"$OUT/steps.tsv"
: >"$OUT/verdicts.txt"

record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${4:-}" >>"$OUT/steps.tsv"; }
skip() { echo; echo "=== $1: skipped ($2)"; record "$1" skipped 0 "$2"; }

# step NAME LIMIT_S FUNCTION [ARGS...]: runs an exported function in its own bash under `timeout`, records the exit
# code and seconds, and never stops the script. A step gets at most what is left of the budget.
step() {
    local name=$1 limit=$2
    shift 2
    local left=$((budget - ($(date +%s) - t0)))
    if [ "$left" -lt 10 ]; then skip "$name" "time budget of ${budget}s spent"; return 1; fi
    [ "$limit" -gt "$left" ] && limit=$left
    echo
    echo "=== $name (limit ${limit}s, $(($(date +%s) - t0))s into the run) ==="
    local start rc
    start=$(date +%s)
    timeout -k 5 "$limit" bash -c '"$@"' _ "$@"
    rc=$?
    local seconds=$(($(date +%s) - start))
    local note=""
    [ "$rc" -eq 124 ] && note="timed out"
    record "$name" "rc=$rc" "$seconds" "$note"
    echo "--- $name: rc=$rc in ${seconds}s"
    return "$rc"
}

# Every comparison line (compare.py, peft_crosscheck.py) is kept for the summary.
verdict() { tee -a "$OUT/verdicts.txt"; }

# ---------------------------------------------------------------- step 1: the machine, the bundle, the shim

machine() {
    nvidia-smi || true
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv || true
    python3 - <<'EOF'
import os, torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())
print("cuda available", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
print("cmake_prefix_path", torch.utils.cmake_prefix_path)
lib = os.path.join(os.path.dirname(torch.__file__), "lib")
print("torch lib", lib)
print("libs", " ".join(sorted(f for f in os.listdir(lib) if f.endswith(".so"))))
for name in ("transformers", "peft", "safetensors"):
    try:
        print(name, __import__(name).__version__)
    except ImportError as e:
        print(name, "missing:", e)
EOF
    if [ -n "${TORCH_LIB:-}" ]; then
        echo "$TORCH_LIB" >"$work.torchlib"
    else
        python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))' >"$work.torchlib.tmp" &&
            mv "$work.torchlib.tmp" "$work.torchlib"
    fi
}

unpack() {
    [ -f "$bundle" ] || { echo "no $bundle: run scripts/gpu/bundle.sh on a machine with the .NET SDK and carry dist/gpu"; return 1; }
    rm -rf "$work" && mkdir -p "$work"
    tar -xJf "$bundle" -C "$work" && cat "$work/finqlora-gpu/BUNDLE.txt"
}

# The shim (libLibTorchSharp.so) must match this libtorch; the first candidate under which `finqlora version`
# reports CUDA (with RUN_DEVICE=cpu: runs at all) wins. The dynamic linker's message for each one that fails is in the log (RTLD_NOW: it names the
# first missing symbol).
find_shim() {
    local torch_lib app cand candidates=()
    torch_lib=$(cat "$work.torchlib")
    app="$work/finqlora-gpu/app"
    [ -n "${FINQLORA_SHIM_DIR:-}" ] && candidates+=("$FINQLORA_SHIM_DIR")
    candidates+=("$repo/dist/gpu/shim" "$work/finqlora-gpu/shim-nuget")
    for cand in "${candidates[@]}"; do
        [ -f "$cand/libLibTorchSharp.so" ] || { echo "shim candidate $cand: no libLibTorchSharp.so"; continue; }
        echo "shim candidate $cand:"
        if FINQLORA_LIBTORCH_DIR="$torch_lib:$cand" "$app/finqlora" version >"$OUT/version.txt" &&
            { [ "$device" = cpu ] || grep -q 'cuda available: True' "$OUT/version.txt"; }; then
            cat "$OUT/version.txt"
            echo "$torch_lib:$cand" >"$work.libtorchdir"
            return 0
        fi
    done
    cat "$OUT/version.txt" 2>/dev/null
    echo "no shim loads against $torch_lib with $device"
    return 1
}

# How far TorchSharp's own shim (built for libtorch 2.10) is from this libtorch: the C++ symbols it needs that no
# torch library here defines. Informational; needs nm (binutils).
shim_symbols() {
    command -v nm >/dev/null || { echo "no nm on this machine"; return 1; }
    local torch_lib shim
    torch_lib=$(cat "$work.torchlib")
    shim="$work/finqlora-gpu/shim-nuget/libLibTorchSharp.so"
    # strong undefined symbols only (type U): weak ones (TLS init functions, for one) may stay unresolved
    nm -D --undefined-only --format=posix "$shim" | awk '$2 == "U" {print $1}' | grep -v '@' | sort -u >"$work.undefined"
    for lib in libc10.so libc10_cuda.so libtorch_cpu.so libtorch_cuda.so libtorch.so; do
        [ -f "$torch_lib/$lib" ] && nm -D --defined-only --format=posix "$torch_lib/$lib" | awk '{print $1}' | sed 's/@.*//'
    done | sort -u >"$work.defined"
    comm -23 "$work.undefined" "$work.defined" | grep -E '^_Z' >"$OUT/shim-nuget-missing-symbols.txt"
    echo "NuGet shim (libtorch 2.10) against $torch_lib: $(wc -l <"$work.undefined") undefined unversioned symbols, $(wc -l <"$OUT/shim-nuget-missing-symbols.txt") C++ ones not defined by this libtorch (list: shim-nuget-missing-symbols.txt)" | verdict
    head -20 "$OUT/shim-nuget-missing-symbols.txt" | c++filt 2>/dev/null || head -20 "$OUT/shim-nuget-missing-symbols.txt"
}

export -f machine unpack find_shim shim_symbols verdict
export bundle

step "machine" 60 machine
step "unpack bundle" 60 unpack
have_shim=no
if [ -s "$work.torchlib" ] && [ -x "$work/finqlora-gpu/app/finqlora" ]; then
    step "shim symbols vs this libtorch" 30 shim_symbols
    step "finqlora version (shim search)" 90 find_shim && have_shim=yes
else
    skip "finqlora version (shim search)" "no torch lib folder or no unpacked bundle"
fi
no_shim="no LibTorchSharp shim loads against this PyTorch (see the shim steps)"

# ---------------------------------------------------------------- step 2: correctness, cuda against cpu

app="$work/finqlora-gpu/app"
models="$work/finqlora-gpu/models"
export app models

finq() { FINQLORA_LIBTORCH_DIR=$(cat "$work.libtorchdir") "$app/finqlora" "$@"; }

prompts() {
    mkdir -p "$work/c"
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
        rm -rf "$work/c/$name.$run"
        finq train --model "$models/stories260K-hf" --data "$work/c/train.jsonl" --out "$work/c/$name.$run" --bits 4 \
            --rank 4 --alpha 32 --dropout 0 --targets q_proj,k_proj,v_proj --max-steps 20 --batch-size 4 \
            --max-seq-len 64 --lr 1e-3 --warmup-steps 0 --seed 1 --save-every 0 --dtype f32 --device "$d" "$@" || return 1
        cp "$work/c/$name.$run/run.json" "$OUT/train-$name.$d.run.json"
    done
    python3 "$repo/scripts/gpu/compare.py" tensors --tol 1e-4 "$work/c/$name.ref/adapter/adapter_model.safetensors" \
        "$work/c/$name.dev/adapter/adapter_model.safetensors" | verdict
    return "${PIPESTATUS[0]}"
}

# NCCL with one rank: bootstrapped over MPI (docs/multi-gpu.md), so it needs mpirun and libmpi on this machine.
nccl_one_rank() {
    rm -rf "$work/c/nccl"
    FINQLORA_COMM_BACKEND=nccl FINQLORA_LIBTORCH_DIR=$(cat "$work.libtorchdir") mpirun --allow-run-as-root -np 1 \
        -x FINQLORA_COMM_BACKEND -x FINQLORA_LIBTORCH_DIR "$app/finqlora" train --model "$models/stories260K-hf" \
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
        finq debug "$@" --device "$d" --out "$work/c/$name.$run.safetensors" --overwrite || return 1
    done
    cp "$work/c/$name.dev.safetensors.json" "$OUT/dump-$name.$device.json"
    # shellcheck disable=SC2086 # the mode and its options are separate words
    python3 "$repo/scripts/gpu/compare.py" $compare "$work/c/$name.ref.safetensors" "$work/c/$name.dev.safetensors" | verdict
    return "${PIPESTATUS[0]}"
}

# quantized KIND [quantize options]: stories260K quantized on the cpu into $work/c/q-KIND, so that the device dumps
# decode the very codes the cpu decodes (the check is the dequantization, not the quantizer).
quantized() {
    local kind=$1
    shift
    finq quantize --model "$models/stories260K-hf" --out "$work/c/q-$kind" --overwrite "$@"
}

# grads_cmp NAME [train options]: a start adapter from 3 cpu training steps (B is then not zero, so A's gradients are
# not either), then one step's gradients on the first 4 examples (4-bit NF4+DQ base, f32) on cpu and on $device.
grads_cmp() {
    local name=$1
    shift
    # a folder of this run's own (named by its start time), so an earlier run's start adapter is never deleted or reused
    local start="$work/c/$name.start.$t0"
    finq train --model "$models/stories260K-hf" --data "$work/c/train.jsonl" --out "$start" --bits 4 \
        --rank 4 --alpha 32 --dropout 0 --targets q_proj,k_proj,v_proj --max-steps 3 --batch-size 4 --max-seq-len 64 \
        --lr 1e-2 --warmup-steps 0 --seed 1 --save-every 0 --dtype f32 --device cpu "$@" >/dev/null || return 1
    dump_cmp "grads-$name" "grads --rel 1e-5" dump-grads --model "$models/stories260K-hf" --data "$work/c/train.jsonl" \
        --adapter "$start/adapter" --bits 4 --quant nf4 --double-quant true --dtype f32 --batch-size 4 \
        --max-seq-len 64 --seed 1
}

quantize_all() {
    quantized nf4 --bits 4 --quant nf4 --double-quant true &&
        quantized fp4 --bits 4 --quant fp4 --double-quant false &&
        quantized int8 --bits 8
}

export -f finq prompts gen_ids train_cmp nccl_one_rank dump_cmp quantized grads_cmp quantize_all

if [ "$have_shim" = yes ]; then
    step "data for the checks" 10 prompts
    story="Once upon a time, there was a little girl named Lily. She loved to play outside"
    step "logits $device = cpu: stories260K HF, f32" 60 dump_cmp logits-hf "logits --tol 1e-4" dump-logits \
        --model "$models/stories260K-hf" --dtype f32 --prompt "$story"
    step "logits $device = cpu: stories260K GGUF, f32" 60 dump_cmp logits-gguf "logits --tol 1e-4" dump-logits \
        --model "$models/stories260K/stories260K.gguf" --dtype f32 --prompt "$story"
    step "generate ids $device = cpu: stories260K HF, f32" 60 gen_ids hf-f32 "$models/stories260K-hf" --dtype f32
    step "generate ids $device = cpu: stories260K GGUF, f32" 60 gen_ids gguf-f32 "$models/stories260K/stories260K.gguf" --dtype f32
    step "quantize on cpu: NF4+DQ, FP4, int8" 60 quantize_all
    step "dequantized $device = cpu, bit-identical: NF4+DQ" 60 dump_cmp dequant-nf4 dequant dump-dequant --model "$work/c/q-nf4"
    step "dequantized $device = cpu, bit-identical: FP4" 60 dump_cmp dequant-fp4 dequant dump-dequant --model "$work/c/q-fp4"
    step "dequantized $device = cpu, bit-identical: int8" 60 dump_cmp dequant-int8 dequant dump-dequant --model "$work/c/q-int8"
    step "generate ids $device = cpu: 4-bit NF4+DQ" 60 gen_ids nf4 "$models/stories260K-hf" --dtype f32 --bits 4 --quant nf4 --double-quant true
    step "generate ids $device = cpu: 4-bit FP4" 60 gen_ids fp4 "$models/stories260K-hf" --dtype f32 --bits 4 --quant fp4 --double-quant false
    step "generate ids $device = cpu: 8-bit LLM.int8" 60 gen_ids int8 "$models/stories260K-hf" --dtype f32 --bits 8
    step "gradients $device = cpu: LoRA, 4-bit" 90 grads_cmp lora
    step "gradients $device = cpu: DoRA, 4-bit" 90 grads_cmp dora --use-dora true
    step "train 20 steps $device = cpu: LoRA, 4-bit" 90 train_cmp lora
    step "train 20 steps $device = cpu: DoRA, 4-bit" 90 train_cmp dora --use-dora true
    if [ "$device" != cuda ]; then
        skip "NCCL, one rank" "NCCL needs cuda"
    elif ! command -v mpirun >/dev/null; then
        skip "NCCL, one rank" "no mpirun on this machine: NCCL is bootstrapped over MPI"
    else
        step "NCCL, one rank" 60 nccl_one_rank
    fi
    # Missing: `serve` on the device (the CLI has it; this step is not written yet).
else
    for s in "logits $device = cpu" "dequantized $device = cpu" "gradients $device = cpu" "generate ids $device = cpu" \
        "train 20 steps $device = cpu" "NCCL, one rank"; do skip "$s" "$no_shim"; done
fi

# ---------------------------------------------------------------- step 3: PEFT interop with this machine's PEFT

peft_interop() {
    local fx="$repo/tests/fixtures/peft" m="$models/stories260K-hf" d devices=(cpu)
    [ "$device" = cuda ] && devices+=(cuda)
    for d in "${devices[@]}"; do
        python3 "$fx/peft_crosscheck.py" logits --model "$m" --adapter "$fx/finqlora_made_adapter" --device "$d" \
            --out "$OUT/finqlora_adapter_via_peft.$d.json" --expect "$fx/finqlora_made_adapter/finqlora_logits.json" | verdict
    done
    # PEFT-made fixtures (fp32, CPU, as the C# tests read them), returned for a later session to commit.
    mkdir -p "$OUT/fixtures"
    python3 "$fx/peft_crosscheck.py" make --model "$m" --out "$OUT/fixtures/peft_made_adapter" --seed 0 &&
        python3 "$fx/peft_crosscheck.py" make --model "$m" --out "$OUT/fixtures/peft_made_dora_adapter" --seed 1 --dora
    local rc=$?
    rm -f "$OUT"/fixtures/peft_made_*/README.md # PEFT's model card, not needed
    return $rc
}
export -f peft_interop

if [ -d "$models/stories260K-hf" ]; then
    step "PEFT interop (our adapter in PEFT; PEFT-made fixtures)" 120 peft_interop
else
    skip "PEFT interop" "no unpacked bundle (models)"
fi
# Missing: FinQLoRA reproducing PEFT's logits on a PEFT-made adapter here (`debug dump-logits --adapter` can; the step is not written yet); the C# tests do it
# on CPU once $OUT/fixtures is committed under tests/fixtures/peft.

# ---------------------------------------------------------------- step 4: benchmarks on an 8B-shaped Llama

peer() { python3 "$repo/bench/peers/peft_lora_step.py" all --json "$OUT/peer-8b.json"; }

planner() {
    local bits
    for bits in 16 8 4; do
        "$app/finqlora" memory --model llama-3.1-8b --bits "$bits" --device cuda --json >"$OUT/planner-inference-$bits.json" &&
            echo "planner, inference at $bits bits: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["total_gib"])' "$OUT/planner-inference-$bits.json") GiB total"
    done
    local batch
    for batch in 4 16; do
        "$app/finqlora" memory --model llama-3.1-8b --bits 4 --train --batch-size "$batch" --seq-len 512 --rank 4 \
            --targets q,k,v --device cuda --json >"$OUT/planner-train-4bit-b$batch.json"
        "$app/finqlora" memory --model llama-3.1-8b --bits 4 --train --batch-size "$batch" --seq-len 512 --rank 4 \
            --targets q,k,v --device cuda --grad-checkpointing --json >"$OUT/planner-train-4bit-b$batch-gc.json"
    done
    cat "$OUT"/planner-*.json
}
export -f peer planner

# 4b (and the transformers side of 4c): PyTorch + PEFT, bf16 base, the same LoRA, in this run.
step "peer: PyTorch + PEFT on 8B-shaped Llama (train, generate)" 240 peer
# 4c, our side: the planner's figures (arithmetic only: `memory` never touches libtorch).
step "planner: finqlora memory for 8B at 16/8/4 bits" 30 planner
# Missing: 4a and our 4c measured (FinQLoRA.Bench has no CUDA mode, no 8B shape, no GPU memory readout; see the top).

# ---------------------------------------------------------------- step 5: summary

{
    echo "# GPU run $(date -u +%Y-%m-%dT%H:%M:%SZ), $(($(date +%s) - t0)) s"
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
# Close the pipe into tee so that it writes the last lines to run.log before the results are collected.
exec 1>&- 2>&-
sleep 1
