#!/usr/bin/env bash
# Installs what the gfx11 ISA check (`w4a16-rdna3 isa`, tests/test_isa.py) and the ROCm build test
# (tests/test_rocm_build.py) need on Debian 12: clang 19 with the AMDGPU target, its linker, the HIP
# headers and runtime library (HIP 5.2 from libamdhip64-dev), CMake and Ninja.
# Idempotent and quiet: does nothing when the packages are already installed.
set -euo pipefail

packages=(clang-19 lld-19 libamdhip64-dev cmake ninja-build)

installed() {
  dpkg-query -W -f='${Status}\n' "${packages[@]}" 2>/dev/null | grep -c "install ok installed" || true
}

if [ "$(installed)" -eq "${#packages[@]}" ]; then
  exit 0
fi

as_root=()
if [ "$(id -u)" -ne 0 ]; then
  as_root=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq "${packages[@]}" >/dev/null
echo "installed ${packages[*]} for the gfx11 ISA check"
