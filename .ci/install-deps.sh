#!/usr/bin/env bash
# Installs what the test suite needs beyond the .NET SDK: Open MPI (mpirun + libmpi.so.40) from Debian packages,
# for the distributed tests (tests/FinQLoRA.Tests/Distributed). Non-interactive and idempotent: does nothing when
# mpirun and libmpi.so.40 are already there. Needs root (or sudo) for apt-get.
set -euo pipefail

have_libmpi() { ldconfig -p 2>/dev/null | grep -q 'libmpi\.so\.40 '; }

if command -v mpirun >/dev/null 2>&1 && have_libmpi; then
    echo "install-deps: Open MPI already installed ($(mpirun --version 2>/dev/null | head -n 1))"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "install-deps: need root or sudo to apt-get install openmpi-bin libopenmpi-dev" >&2; exit 1; }
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends openmpi-bin libopenmpi-dev
echo "install-deps: installed $(mpirun --version 2>/dev/null | head -n 1)"
