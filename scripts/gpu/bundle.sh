#!/usr/bin/env bash
# Packs FinQLoRA for a GPU machine that has PyTorch (with CUDA) but no .NET SDK and no NuGet: one archive,
# dist/gpu/finqlora-gpu.tar.xz (dist/ is ignored), holding
#   app/        a self-contained linux-x64 publish of the CLI (app/finqlora) and the benchmarks (app/FinQLoRA.Bench),
#               built with -p:TorchDevice=none: TorchSharp's managed assembly, no libtorch, no LibTorchSharp shim;
#               both come from FINQLORA_LIBTORCH_DIR at run time (docs/gpu.md)
#   shim-nuget/ TorchSharp's own libLibTorchSharp.so from its NuGet package, built for libtorch 2.10: a candidate
#               only, it loads against another libtorch version only if every symbol it needs is still there
#   models/     stories260K (HF folder and GGUF) from the shared folder, for the correctness checks
#   BUNDLE.txt  commit, versions, contents
# and fails if the archive exceeds 60 MiB (what travels to the GPU machine with the working tree is capped at 64 MiB).
# Runs on any linux-x64 machine with the .NET SDK; the publish happens in a temporary copy of the working tree, so
# this checkout's bin/ and obj/ (built for the CPU runtime) are left alone.
#
#   scripts/gpu/bundle.sh              # FINQLORA_SHARED overrides where the shared folder is (default ../shared)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
limit_mib=60
out_dir="$repo/dist/gpu"
archive="$out_dir/finqlora-gpu.tar.xz"
shared=${FINQLORA_SHARED:-"$repo/../shared"}
prop() { sed -n "s:.*<$1>\(.*\)</$1>.*:\1:p" "$repo/Directory.Build.props"; }
torchsharp_version=$(prop TorchSharpVersion)
libtorch_version=$(prop LibTorchVersion)
nuget=${NUGET_PACKAGES:-"$HOME/.nuget/packages"}
nuget_shim="$nuget/torchsharp/$torchsharp_version/runtimes/linux-x64/native/libLibTorchSharp.so"

for f in "$shared/models/stories260K-hf/config.json" "$shared/models/stories260K/stories260K.gguf"; do
    [ -f "$f" ] || { echo "bundle: $f is missing; set FINQLORA_SHARED to the project's shared folder" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/finqlora-bundle.XXXXXX")
trap 'rm -rf "$work"' EXIT
src="$work/src"
stage="$work/finqlora-gpu"
mkdir -p "$src" "$stage/models" "$stage/shim-nuget" "$out_dir"

# The working tree as git sees it (tracked files and untracked ones that are not ignored): what would be committed.
(cd "$repo" && git ls-files -z --cached --others --exclude-standard | tar --null --ignore-failed-read -T - -cf -) | tar -xf - -C "$src"

start=$(date +%s)
for project in src/FinQLoRA.Cli bench/FinQLoRA.Bench; do
    # Both into one folder: they share the runtime and most assemblies (same versions), which the archive then holds once.
    dotnet publish "$src/$project" -c Release -r linux-x64 --self-contained true -p:TorchDevice=none \
        -p:SatelliteResourceLanguages=en -o "$stage/app" -nologo -v quiet
done
echo "bundle: published in $(( $(date +%s) - start )) s"

# Nothing of libtorch may be in the publish: the point is to use the GPU machine's own.
if found=$(cd "$stage/app" && ls libtorch*.so* libc10*.so* libLibTorchSharp.so 2>/dev/null) && [ -n "$found" ]; then
    echo "bundle: libtorch binaries in the publish (the TorchDevice=none switch did not hold): $found" >&2
    exit 1
fi

if [ -f "$nuget_shim" ]; then
    cp "$nuget_shim" "$stage/shim-nuget/"
else
    echo "bundle: note: $nuget_shim not found; the archive has no NuGet shim candidate" >&2
    rmdir "$stage/shim-nuget"
fi
cp -r "$shared/models/stories260K-hf" "$shared/models/stories260K" "$stage/models/"

{
    echo "FinQLoRA GPU bundle (scripts/gpu/bundle.sh)"
    echo "commit: $(cd "$repo" && git rev-parse HEAD)$(cd "$repo" && git diff --quiet HEAD -- . 2>/dev/null || echo ' + uncommitted changes')"
    echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) with .NET SDK $(dotnet --version)"
    echo "TorchSharp $torchsharp_version (managed only); shim-nuget/ = its libLibTorchSharp.so, built for libtorch $libtorch_version"
    echo "run: FINQLORA_LIBTORCH_DIR=<torch/lib>:<folder with a libLibTorchSharp.so built against it> app/finqlora version"
} >"$stage/BUNDLE.txt"

tar -C "$work" -cf - finqlora-gpu | xz -9 -T"$(nproc)" >"$archive.tmp"
mv "$archive.tmp" "$archive"

bytes=$(stat -c %s "$archive")
unpacked=$(du -sb "$stage" | cut -f1)
printf 'bundle: %s: %d bytes (%.1f MiB; unpacked %.1f MiB)\n' "$archive" "$bytes" "$(echo "$bytes / 1048576" | bc -l)" "$(echo "$unpacked / 1048576" | bc -l)"
if [ "$bytes" -gt $(( limit_mib * 1024 * 1024 )) ]; then
    echo "bundle: $archive is over the $limit_mib MiB limit" >&2
    exit 1
fi
