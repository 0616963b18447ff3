#!/usr/bin/env bash
# Sets up medgr2 on a fresh Debian/Ubuntu machine, or refreshes an existing checkout. Idempotent.
#   1. system packages (apt): cmake, ninja-build, g++, clang-format, and libtorch-dev + libgloo-dev unless a
#      libtorch is already at hand (MEDGR2_LIBTORCH, the PyTorch of python3, or the system's);
#      fonts-dejavu-core, the font the report's charts are drawn in (offline, no font download);
#   2. npm ci (node packages only from the npm registry; nothing else is downloaded);
#   3. the native addon (cmake-js, against that libtorch) and the TypeScript build.
# Environment: MEDGR2_LIBTORCH=/path/to/libtorch to build against a given libtorch (e.g. a CUDA one);
#              MEDGR2_CUDA=AUTO|ON|OFF (default AUTO); MEDGR2_SKIP_APT=1 to never call apt.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

libtorch_found() {
  if [[ -n "${MEDGR2_LIBTORCH:-}" ]]; then
    [[ -d "$MEDGR2_LIBTORCH" ]] || die "MEDGR2_LIBTORCH=$MEDGR2_LIBTORCH is not a folder"
    say "libtorch: MEDGR2_LIBTORCH=$MEDGR2_LIBTORCH"; return 0
  fi
  local prefix
  if prefix=$(python3 -c 'import torch.utils; print(torch.utils.cmake_prefix_path)' 2>/dev/null) \
      && [[ -f "$prefix/Torch/TorchConfig.cmake" ]]; then
    say "libtorch: the PyTorch of python3 ($prefix)"; return 0
  fi
  local cfg
  for cfg in /usr/lib/*/cmake/Torch/TorchConfig.cmake /usr/share/cmake/Torch/TorchConfig.cmake \
             /usr/local/share/cmake/Torch/TorchConfig.cmake; do
    if [[ -f "$cfg" ]]; then say "libtorch: system ($cfg)"; return 0; fi
  done
  return 1
}

apt_install() {
  [[ "${MEDGR2_SKIP_APT:-0}" == 1 ]] && die "missing system packages ($*) and MEDGR2_SKIP_APT=1"
  command -v apt-get >/dev/null || die "missing system packages ($*) and no apt-get here. Install libtorch (C++) and set MEDGR2_LIBTORCH to its folder, plus cmake, ninja and a C++17 compiler, then run this again."
  local sudo=""
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || die "apt-get needs root to install: $*"
    sudo="sudo"
  fi
  say "apt-get install $*"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

need=()
command -v cmake >/dev/null || need+=(cmake)
command -v ninja >/dev/null || need+=(ninja-build)
command -v g++ >/dev/null || need+=(g++)
# `npm run lint` checks native/'s format with it (scripts/check_native_format.sh).
command -v clang-format >/dev/null || need+=(clang-format)
if ! libtorch_found; then
  need+=(libtorch-dev libgloo-dev)
fi
# Debian's libtorch calls the generic libblas.so.3, which defaults to the reference (netlib) BLAS:
# about 8 GFLOP/s on 2 cores. OpenBLAS (OpenMP build, like libtorch) makes CPU matmuls ~10x faster.
if [[ -z "${MEDGR2_LIBTORCH:-}" ]] && command -v apt-get >/dev/null && ! ldconfig -p | grep -q 'libopenblas\.so\.0'; then
  need+=(libopenblas0-openmp)
fi
# The charts (src/report/charts.ts) name DejaVu Sans; sharp's librsvg finds it through fontconfig.
# Without it the PNGs fall back to whatever font is there, or draw no text at all.
if ! { command -v fc-list >/dev/null && fc-list | grep -qi 'DejaVu Sans'; } && [[ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]]; then
  if command -v apt-get >/dev/null; then need+=(fonts-dejavu-core)
  else say "warning: no DejaVu Sans font: install it (e.g. fonts-dejavu-core) or the chart PNGs may show no text"; fi
fi
# The distributed tests also start ranks with torchrun (Debian's python3-torch ships /usr/bin/torchrun;
# the tests skip that case without it, e.g. in the libtorch 2.x chroot, which never calls apt here).
if ! command -v torchrun >/dev/null && [[ "${MEDGR2_SKIP_APT:-0}" != 1 ]] && command -v apt-get >/dev/null; then
  need+=(python3-torch)
fi
if ((${#need[@]})); then apt_install "${need[@]}"; fi
libtorch_found >/dev/null || die "libtorch is still not found after installing; set MEDGR2_LIBTORCH"

command -v node >/dev/null || die "Node.js >= 20.17 is required (node not found)"
say "npm ci"
npm ci --no-audit --no-fund --loglevel=error

cuda_flag=()
[[ -n "${MEDGR2_CUDA:-}" ]] && cuda_flag=(--CDMEDGR2_CUDA="$MEDGR2_CUDA")
say "building the native addon"
npx cmake-js compile --out build "${cuda_flag[@]}" --log-level warn
say "building TypeScript"
npm run --silent build:ts
chmod +x dist/src/cli/main.js
say "done: \`npx medgr2 cycle\` runs the embedded default, \`npx medgr2 info\` shows the setup, \`npm test\` tests"
