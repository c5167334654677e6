#!/usr/bin/env python3
"""PyTorch + PEFT peer of FinQLoRA's benchmarks on an 8B-shaped Llama (issue 14, step 4b and 4c).

The model is Llama 3.1 8B's shape (32 layers, hidden 4096, FFN 14336, 32/8 heads, vocab 128256) with random weights
created on the GPU from a LlamaConfig: no download, no file round trip. Base weights are bf16 and frozen.

  train     LoRA r4 (alpha 32, dropout 0.1) on q,k,v with PEFT; AdamW on the adapters; batch 4 and 16 x 512 tokens,
            gradient checkpointing off and on: tokens/s, peak GPU memory (torch.cuda.max_memory_allocated, weights
            included), MFU against the bf16 matmul rate measured in this run.
  generate  transformers' greedy generate on the base model at batch 1 and 16: prefill and decode tokens/s, peak
            GPU memory (the 16-bit inference figure to set next to `finqlora memory --bits 16`).
  all       (default) both on one model: rates, generate, then train.

Peak memory is reported two ways on the same run: PyTorch's allocator (max_memory_allocated, max_memory_reserved)
and NVML's memory in use on the whole GPU above what was in use when this script started (sampled every millisecond
on a thread; CUDA context and cached blocks included). The NVML figure is the one FinQLoRA's bench can read (TorchSharp
exposes no allocator statistics), so ours/PEFT memory ratios are NVML against NVML.

MFU counts the same FLOPs as FinQLoRA's `FinQLoRA.Bench train`: 4 x linear parameters x tokens (forward, and the
input gradients of the frozen base) + 12 x batch x seq^2 x hidden x layers for attention; recomputation under
gradient checkpointing is not counted. Each configuration is guarded: an out-of-memory is reported as OOM and the
next one runs. Needs torch with CUDA, transformers and peft; uses no network.

  python3 bench/peers/peft_lora_step.py [all|train|generate] [--layers 32] [--batches 4,16] [--seq 512]
          [--steps 5] [--json results.json]
"""
import argparse
import ctypes
import json
import threading
import os
import sys
import time
import traceback

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
import torch  # noqa: E402
import transformers  # noqa: E402
import peft  # noqa: E402
from peft import LoraConfig, get_peft_model  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

GIB = 1024 ** 3


class NvmlPeak:
    """NVML memory in use on the GPU (all processes) above the reading at construction; None where NVML is missing."""

    class _Memory(ctypes.Structure):
        _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]

    def __init__(self, cuda_index=0):
        self.handle = None
        try:
            self.lib = ctypes.CDLL("libnvidia-ml.so.1")
            visible = [v for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip().isdigit()]
            index = int(visible[cuda_index]) if cuda_index < len(visible) else cuda_index
            handle = ctypes.c_void_p()
            if self.lib.nvmlInit_v2() == 0 and self.lib.nvmlDeviceGetHandleByIndex_v2(index, ctypes.byref(handle)) == 0:
                self.handle = handle
        except OSError as e:
            print(f"NVML: {e}; no NVML figures", flush=True)
        self.baseline = self.used() if self.handle else 0
        self.peak = self.baseline
        self._stop = None

    def used(self):
        m = NvmlPeak._Memory()
        return m.used if self.lib.nvmlDeviceGetMemoryInfo(self.handle, ctypes.byref(m)) == 0 else 0

    def start(self):
        """Starts sampling; the peak restarts from what is in use now."""
        if not self.handle:
            return
        self.peak = self.used()
        self._stop = threading.Event()

        def sample():
            while not self._stop.is_set():
                self.peak = max(self.peak, self.used())
                self._stop.wait(0.001)
        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()

    def stop_gib(self):
        """Stops sampling; the peak above the script's start in GiB, or None without NVML."""
        if not self.handle or self._stop is None:
            return None
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.used())
        return (self.peak - self.baseline) / GIB


NVML = None  # made in main() before the first CUDA call, so its baseline has no CUDA context in it


def llama_8b_config(layers):
    return LlamaConfig(
        vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=layers,
        num_attention_heads=32, num_key_value_heads=8, head_dim=128, max_position_embeddings=8192,
        rope_theta=500000.0, rms_norm_eps=1e-5, tie_word_embeddings=False,
        bos_token_id=128000, eos_token_id=128001, pad_token_id=128001, attn_implementation="sdpa",
    )


def make_model(config):
    """Random bf16 weights allocated and initialised on the GPU (transformers' own init, seeded)."""
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)  # parameters are created in bf16, never as an fp32 copy first
    try:
        with torch.device("cuda"):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    model.requires_grad_(False)
    return model


def linear_parameters(c):
    kv = c.num_key_value_heads * c.head_dim
    per_layer = 2 * c.hidden_size * c.hidden_size + 2 * c.hidden_size * kv + 3 * c.hidden_size * c.intermediate_size
    return per_layer * c.num_hidden_layers + c.vocab_size * c.hidden_size  # + lm_head


def step_flops(c, batch, seq):
    attention = 12.0 * batch * seq * seq * c.hidden_size * c.num_hidden_layers
    return 4.0 * linear_parameters(c) * batch * seq + attention


def timed(fn, repeats):
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def matmul_rate(n=8192, repeats=20):
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    timed(lambda: a @ b, 3)
    seconds = timed(lambda: a @ b, repeats)
    return 2.0 * n ** 3 / seconds


def copy_bandwidth(nbytes=2 * GIB, repeats=20):
    """Device-to-device copy, bytes read + written per second: the baseline for a dequantization kernel."""
    x = torch.empty(nbytes // 2, device="cuda", dtype=torch.bfloat16)
    y = torch.empty_like(x)
    timed(lambda: y.copy_(x), 3)
    return 2.0 * nbytes / timed(lambda: y.copy_(x), repeats)


def guarded(name, fn):
    """Runs one configuration; an out-of-memory, or any other failure, becomes a result row instead of the end of
    the run (the GPU time for the others is not lost)."""
    try:
        return fn()
    except torch.cuda.OutOfMemoryError as e:
        print(f"  {name}: OOM ({str(e).splitlines()[0][:160]})", flush=True)
        return {"error": "OOM"}
    except Exception as e:  # noqa: BLE001 - reported, with its traceback, and the next configuration runs
        traceback.print_exc()
        print(f"  {name}: FAILED ({type(e).__name__}: {e})", flush=True)
        return {"error": f"{type(e).__name__}: {e}"}
    finally:
        torch.cuda.empty_cache()


def bench_generate(model, batch, prompt_len, new_tokens):
    """Greedy decoding: decode rate from the difference between `new_tokens` and 1 generated token (prefill cancels)."""
    model.eval()
    g = torch.Generator(device="cuda").manual_seed(batch)
    ids = torch.randint(3, model.config.vocab_size, (batch, prompt_len), device="cuda", generator=g)
    mask = torch.ones_like(ids)

    def run(n):
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=n, min_new_tokens=n,
                                 do_sample=False, pad_token_id=model.config.pad_token_id)
        assert out.shape[1] == prompt_len + n, out.shape

    run(2)  # warm-up: kernels, cuBLAS handles
    one = timed(lambda: run(1), 2)
    torch.cuda.empty_cache()  # blocks cached by earlier parts would count in NVML's figure (FinQLoRA's child has none)
    torch.cuda.reset_peak_memory_stats()
    NVML.start()
    full = timed(lambda: run(new_tokens), 1)
    nvml = NVML.stop_gib()
    decode = batch * (new_tokens - 1) / (full - one)
    return {"batch": batch, "prompt_len": prompt_len, "new_tokens": new_tokens, "prefill_s": one,
            "generate_s": full, "decode_tokens_per_s": decode, "peak_nvml_gib": nvml,
            "peak_allocated_gib": torch.cuda.max_memory_allocated() / GIB,
            "peak_reserved_gib": torch.cuda.max_memory_reserved() / GIB}


def bench_train(peft_model, base, batch, seq, checkpointing, steps, warmup, peak_rate):
    if checkpointing:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        base.gradient_checkpointing_disable()
    base.config.use_cache = False
    peft_model.zero_grad(set_to_none=True)  # nothing left over from a configuration that ran out of memory
    peft_model.train()
    g = torch.Generator(device="cuda").manual_seed(batch * 1000 + seq)
    ids = torch.randint(3, base.config.vocab_size, (batch, seq), device="cuda", generator=g)
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4, weight_decay=0.0)

    def one_step():
        loss = peft_model(input_ids=ids, labels=ids).loss  # next-token loss over every position
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    torch.cuda.empty_cache()  # as in bench_generate
    NVML.start()  # the warm-up too: FinQLoRA's figure covers every step of its child
    timed(one_step, warmup)
    torch.cuda.reset_peak_memory_stats()
    seconds = timed(one_step, steps)
    nvml = NVML.stop_gib()
    flops = step_flops(base.config, batch, seq)
    return {"batch": batch, "seq": seq, "grad_checkpointing": checkpointing, "step_s": seconds, "peak_nvml_gib": nvml,
            "tokens_per_s": batch * seq / seconds, "mfu_bf16": flops / seconds / peak_rate,
            "peak_allocated_gib": torch.cuda.max_memory_allocated() / GIB,
            "peak_reserved_gib": torch.cuda.max_memory_reserved() / GIB}


def fmt(gib):
    return "-" if gib is None else f"{gib:.2f}"


def save(results, path):
    """Written after each part, so that a later failure keeps what was measured; temp name then rename."""
    if path:
        with open(path + ".tmp", "w") as f:
            json.dump(results, f, indent=1)
        os.replace(path + ".tmp", path)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", nargs="?", default="all", choices=["all", "train", "generate"])
    p.add_argument("--layers", type=int, default=32, help="decoder layers (32 = 8B; fewer for a quick try)")
    p.add_argument("--batches", default="4,16", help="training batch sizes")
    p.add_argument("--checkpointing", default="both", choices=["both", "on", "off"])
    p.add_argument("--seq", type=int, default=512, help="training sequence length")
    p.add_argument("--steps", type=int, default=5, help="timed training steps per configuration")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--dropout", type=float, default=0.1, help="LoRA dropout (the paper's 0.1, as FinQLoRA's bench)")
    p.add_argument("--gen-batches", default="1,16")
    p.add_argument("--prompt-len", type=int, default=448, help="prompt tokens; with --new-tokens 64 a 512-token context")
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--json", help="write every figure here")
    a = p.parse_args()
    global NVML
    NVML = NvmlPeak()
    if not torch.cuda.is_available():
        sys.exit("peft_lora_step.py: needs a CUDA GPU (torch.cuda.is_available() is False)")
    torch.backends.cuda.matmul.allow_tf32 = False  # bf16 runs are unaffected; keeps any fp32 matmul honest

    results = {"versions": {"torch": torch.__version__, "cuda": torch.version.cuda, "transformers": transformers.__version__,
                            "peft": peft.__version__},
               "gpu": torch.cuda.get_device_name(0), "layers": a.layers}
    print(f"{results['gpu']}; torch {torch.__version__} (CUDA {torch.version.cuda}), transformers {transformers.__version__}, peft {peft.__version__}")

    peak_rate = matmul_rate()
    results["bf16_matmul_tflops"] = peak_rate / 1e12
    results["copy_gb_per_s"] = copy_bandwidth() / 1e9
    print(f"measured: bf16 matmul (8192^3) {peak_rate / 1e12:.1f} TFLOP/s; device copy {results['copy_gb_per_s']:.0f} GB/s (read + write)")
    save(results, a.json)

    config = llama_8b_config(a.layers)
    start = time.perf_counter()
    base = make_model(config)
    torch.cuda.synchronize()
    n = sum(t.numel() for t in base.parameters())
    results["parameters"] = n
    results["weights_gib"] = torch.cuda.memory_allocated() / GIB
    print(f"model: random Llama {n / 1e9:.2f}B parameters, {a.layers} layers, bf16 on the GPU in {time.perf_counter() - start:.1f} s; "
          f"{results['weights_gib']:.2f} GiB allocated")

    if a.mode in ("all", "generate"):
        rows = []
        for batch in [int(b) for b in a.gen_batches.split(",")]:
            r = guarded(f"generate batch {batch}", lambda: bench_generate(base, batch, a.prompt_len, a.new_tokens))
            r.setdefault("batch", batch)
            rows.append(r)
            if "error" not in r:
                print(f"  generate batch {batch}: prefill {r['prefill_s']:.3f} s, decode {r['decode_tokens_per_s']:.1f} tokens/s, "
                      f"peak {r['peak_allocated_gib']:.2f} GiB allocated", flush=True)
        results["generate"] = rows
        save(results, a.json)

    if a.mode in ("all", "train"):
        lora = LoraConfig(r=4, lora_alpha=32, lora_dropout=a.dropout, target_modules=["q_proj", "k_proj", "v_proj"],
                          task_type="CAUSAL_LM")
        peft_model = get_peft_model(base, lora)
        for module in peft_model.modules():  # adapters in fp32, as FinQLoRA keeps them; the base stays bf16
            if hasattr(module, "lora_A"):
                module.lora_A.float()
                module.lora_B.float()
        trainable = sum(t.numel() for t in peft_model.parameters() if t.requires_grad)
        print(f"LoRA r4 alpha 32 dropout {a.dropout} on q,k,v: {trainable / 1e6:.2f}M trainable parameters (fp32)")
        rows = []
        for batch in [int(b) for b in a.batches.split(",")]:
            for checkpointing in {"both": (False, True), "on": (True,), "off": (False,)}[a.checkpointing]:
                name = f"train batch {batch}x{a.seq}, checkpointing {'on' if checkpointing else 'off'}"
                r = guarded(name, lambda: bench_train(peft_model, base, batch, a.seq, checkpointing, a.steps, a.warmup, peak_rate))
                r.setdefault("batch", batch)
                r.setdefault("grad_checkpointing", checkpointing)
                rows.append(r)
                if "error" not in r:
                    print(f"  {name}: {r['step_s']:.3f} s/step, {r['tokens_per_s']:.0f} tokens/s, MFU {r['mfu_bf16']:.1%}, "
                          f"peak {r['peak_allocated_gib']:.2f} GiB allocated, {r['peak_reserved_gib']:.2f} GiB reserved, "
                          f"NVML {r['peak_nvml_gib'] if r['peak_nvml_gib'] is None else format(r['peak_nvml_gib'], '.2f')} GiB", flush=True)
        results["train"] = rows
        save(results, a.json)

    print()
    print("| what | batch | grad ckpt | s | tokens/s | MFU (bf16) | peak GiB (allocated) | peak GiB (reserved) | peak GiB (NVML, above start) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results.get("generate", []):
        if "error" in r:
            print(f"| generate | {r['batch']} | - | {r['error'][:40]} | | | | | |")
        else:
            print(f"| generate (decode) | {r['batch']} | - | {r['generate_s']:.3f} | {r['decode_tokens_per_s']:.1f} | - | {r['peak_allocated_gib']:.2f} | {r['peak_reserved_gib']:.2f} | {fmt(r['peak_nvml_gib'])} |")
    for r in results.get("train", []):
        gc = "on" if r["grad_checkpointing"] else "off"
        if "error" in r:
            print(f"| train step | {r['batch']}x{a.seq} | {gc} | {r['error'][:40]} | | | | | |")
        else:
            print(f"| train step | {r['batch']}x{a.seq} | {gc} | {r['step_s']:.3f} | {r['tokens_per_s']:.0f} | {r['mfu_bf16']:.1%} | {r['peak_allocated_gib']:.2f} | {r['peak_reserved_gib']:.2f} | {fmt(r['peak_nvml_gib'])} |")

    save(results, a.json)
    if a.json:
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
