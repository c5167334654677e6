#!/usr/bin/env bash
# Adds (or with "remove", removes) one uprobe per ATen dispatcher entry point, at::_ops::<op>::call, in the libtorch
# that TorchSharp loads, as tracefs events of group "finqlora_aten". `bench train` counts those events for its own
# threads during one step. Usage: aten-probes.sh [path/to/libtorch_cpu.so | remove] (default: the Release bench build's copy);
# (FinQLoRA.Bench.AtenOpCounter) and prints ops per layer per step. Needs root and tracefs;
# the probes cost a few microseconds per op only while the bench enables them.
set -euo pipefail
lib="${1:-}"
if [[ "$lib" == "remove" || -z "$lib" ]]; then
  # the copy the bench loads (a uprobe is tied to one file's inode; the build output's copy is not the package's)
  lib_default="$(cd "$(dirname "$0")/../.." && pwd)/bench/FinQLoRA.Bench/bin/Release/net10.0/linux-x64/libtorch_cpu.so"
fi
mode=add
if [[ "$lib" == "remove" ]]; then mode=remove; lib="$lib_default"; fi
lib="${lib:-$lib_default}"
tracefs=/sys/kernel/tracing
[[ -w "$tracefs/uprobe_events" ]] || mount -t tracefs nodev "$tracefs" 2>/dev/null || true
[[ -w "$tracefs/uprobe_events" ]] || { echo "aten-probes.sh: $tracefs/uprobe_events is not writable (run as root on a kernel with uprobes)" >&2; exit 2; }
# remove this group's old probes (only ours: the group name is ours alone)
if [[ -d "$tracefs/events/finqlora_aten" ]]; then
  echo 0 > "$tracefs/events/finqlora_aten/enable"
  # the list is read whole first: reading uprobe_events while removing from it skips entries
  ours=$(grep -o '^p:finqlora_aten/[A-Za-z0-9_]*' "$tracefs/uprobe_events" | sed 's/^p:/-:/')
  while read -r line; do [[ -n "$line" ]] && echo "$line" >> "$tracefs/uprobe_events"; done <<< "$ours"
fi
[[ "$mode" == remove ]] && { echo "removed"; exit 0; }
# The text segment of libtorch_cpu.so is loaded at file offset 0 = vaddr 0, so a symbol's value is its file offset.
read -r file_off vaddr < <(readelf -lW "$lib" | awk '$1=="LOAD" && / R E / {print $2, $3; exit}')
(( file_off == vaddr )) || { echo "aten-probes.sh: $lib's text segment is not at file offset = vaddr; this script assumes it" >&2; exit 2; }
nm -D --defined-only "$lib" | awk '$3 ~ /^_ZN2at4_ops[0-9]+[A-Za-z0-9_]+4callE/ {print $1, $3}' | while read -r addr sym; do
  rest=${sym#_ZN2at4_ops}; len=${rest%%[!0-9]*}; name=${rest:${#len}:$len}
  echo "p:finqlora_aten/${name:0:60} $lib:0x$addr"
done | sort -u -k1,1 > /tmp/finqlora-aten-probes.txt
# one write per probe: tracefs rejects a definition split across two writes of a larger buffer
while read -r line; do echo "$line" >> "$tracefs/uprobe_events"; done < /tmp/finqlora-aten-probes.txt
echo "added $(ls "$tracefs/events/finqlora_aten" | grep -vc -e enable -e filter) probes on $lib"
