#!/usr/bin/env bash
# Installs what the test suite needs beyond the .NET SDK, from Debian packages:
# - Open MPI (mpirun + libmpi.so.40), for the distributed tests (tests/FinQLoRA.Tests/Distributed);
# - Chromium (/usr/bin/chromium), which the console page's browser tests drive through Playwright
#   (tests/FinQLoRA.Tests/Serving/ConsolePage; Playwright's own browser download is never used).
# Non-interactive and idempotent: installs only what is missing, and does nothing when everything is there.
# Needs root (or sudo) for apt-get.
set -euo pipefail

have_libmpi() { ldconfig -p 2>/dev/null | grep -q 'libmpi\.so\.40 '; }

missing=()
if command -v mpirun >/dev/null 2>&1 && have_libmpi; then
    echo "install-deps: Open MPI already installed ($(mpirun --version 2>/dev/null | head -n 1))"
else
    missing+=(openmpi-bin libopenmpi-dev)
fi
if [ -x /usr/bin/chromium ]; then
    echo "install-deps: Chromium already installed ($(/usr/bin/chromium --version 2>/dev/null | head -n 1))"
else
    missing+=(chromium)
fi
[ "${#missing[@]}" -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "install-deps: need root or sudo to apt-get install ${missing[*]}" >&2; exit 1; }
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "install-deps: installed ${missing[*]}"
