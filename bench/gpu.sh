#!/usr/bin/env bash
# The GPU check: one command on an NVIDIA machine (the device tool) that builds against the
# machine's PyTorch (with CUDA), runs the test suite (CUDA tests included), makes the HF reference
# fixtures, runs the kernel and model benches, leaves logs/CSVs under $OUT and prints a short table
# last. Sized for a session's device budget: 15 min of device time in all, <= 10 min per command,
# one H100 80 GB by default -- every step has its own time limit so one hang cannot eat the rest.
#
# The device machine reaches no network, so prepare on the CPU machine first (needs npm):
#   bash bench/gpu.sh --prepare     # .device/: node binary + production node_modules; dist/ built
#   device tool: command "bash bench/gpu.sh", carry [".device", "dist"], timeout_s 600
# and rehearse everything but the GPU parts here, on the CPU:
#   bash bench/gpu.sh --dry-run     # or MEDGR2_GPU_DRY_RUN=1; tiny bench sizes, a test subset
#
# Expected time per part on an H100 (16 cores), total ~8 min inside the 10-min command limit:
#   unpack      ~10 s   node + node_modules from .device/
#   build       ~2.5 min  cmake-js against python3's PyTorch 2.x + CUDA, 4 kernels for sm_90
#   info        ~5 s    medgr2 info: libtorch version, the GPU, kernels compiled in
#   hf_fixtures ~40 s   transformers' tiny Qwen2-VL / Qwen2.5-VL references (skipped without it)
#   tests       ~3 min  the whole suite, CUDA tests included (fused logprob / GRPO kernels vs CPU)
#   bench_kernel ~15 s  scale_add CUDA kernel, 1M and 16M floats: GB/s against the copy bandwidth
#   bench_loss  ~30 s   fused GRPO loss vs libtorch ops, up to 4M tokens (a CPU bench: its CUDA
#                       kernel's numbers against the CPU come from the CUDA tests)
#   bench_model ~1.5 min  Qwen2.5-VL-3B-shaped random model, bf16: train tokens/s, MFU, decode tokens/s
# Not here: bench/fused_logprob.ts (CPU only, a 7B head: minutes) and bench/grpo_step.ts --shape 3b
# (a whole GRPO step with generation: a few minutes more than one command allows next to the rest).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD

mode=run
case "${1:-}" in
  --prepare) mode=prepare ;;
  --dry-run) mode=dry ;;
  "") [[ "${MEDGR2_GPU_DRY_RUN:-0}" == 1 ]] && mode=dry ;;
  *) echo "usage: bash bench/gpu.sh [--prepare | --dry-run]" >&2; exit 2 ;;
esac

# --- --prepare (CPU machine, with npm): what the offline device machine cannot fetch ----------
if [[ $mode == prepare ]]; then
  set -e
  mkdir -p .device
  xz -T0 -6 -c "$(command -v node)" > .device/node.xz
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  cp package.json package-lock.json "$tmp/"
  # Production dependencies only (no typescript/eslint): dist/ is built here and carried.
  (cd "$tmp" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error)
  tar -C "$tmp" -cJf .device/node_modules.tar.xz node_modules
  npm run --silent build:ts
  du -sh .device/* dist | sed 's/^/[gpu.sh] prepared /'
  echo "[gpu.sh] carry [\".device\", \"dist\"] (the device tool allows 64 MiB in all)"
  exit 0
fi

OUT="${OUT:-$repo/gpu-out}"
mkdir -p "$OUT"
: > "$OUT/summary.txt"
export PATH="$repo/node_modules/.bin:$PATH"

# The device tool kills a command at 10 min and the table must still print: every step's limit is
# cut to what is left of MEDGR2_GPU_BUDGET_S (default 560 s; 30 min for a dry run), 15 s kept back.
budget=${MEDGR2_GPU_BUDGET_S:-$([[ $mode == dry ]] && echo 1800 || echo 560)}
deadline=$((SECONDS + budget))
# step NAME LIMIT_S CMD...: runs with a time limit, log in $OUT/NAME.log, a summary row.
step() {
  local name=$1 limit=$2 t0=$SECONDS rc left=$((deadline - SECONDS - 15))
  shift 2
  if ((left < 10)); then skip "$name" "out of time (budget ${budget}s)"; return; fi
  ((limit > left)) && limit=$left
  echo "== $name (limit ${limit}s)"
  timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  [[ $rc == 124 || $rc == 137 ]] && echo "(timed out after ${limit}s)" >> "$OUT/$name.log"
  printf '%-14s rc=%-3s %5ss\n' "$name" "$rc" "$((SECONDS - t0))" | tee -a "$OUT/summary.txt"
}
skip() { printf '%-14s skipped (%s)\n' "$1" "$2" | tee -a "$OUT/summary.txt"; }

# node and node_modules from --prepare when the image has none (~10 s).
if ! command -v node >/dev/null && [[ -f .device/node.xz ]]; then
  mkdir -p /tmp/nodebin && xz -dc .device/node.xz > /tmp/nodebin/node && chmod +x /tmp/nodebin/node
  export PATH="/tmp/nodebin:$PATH"
fi
if [[ ! -d node_modules && -f .device/node_modules.tar.xz ]]; then tar -xJf .device/node_modules.tar.xz; fi
command -v node >/dev/null || { echo "gpu.sh: no node (run bash bench/gpu.sh --prepare and carry .device)" >&2; exit 1; }

if [[ $mode == dry ]]; then
  echo "[gpu.sh] DRY RUN on the CPU: no nvidia-smi, CUDA AUTO, tiny bench sizes, a test subset" | tee "$OUT/gpu.txt"
  cuda=AUTO
  tests=(dist/test/native dist/test/ops dist/test/model/model_bf16.test.js)
  loss_args=(65536)
  model_args=()
  build_limit=900 # 2 cores, not 16
else
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
  cuda=ON # a libtorch without CUDA is an error here, not a silent CPU build
  tests=(dist/test/)
  loss_args=(4194304)
  model_args=(--shape 3b)
  build_limit=360
fi

# CMakeLists finds python3's PyTorch (with CUDA) by itself.
step build $build_limit cmake-js compile --out build --CDMEDGR2_CUDA=$cuda --CDCMAKE_CUDA_ARCHITECTURES=90 --log-level warn
if command -v tsc >/dev/null; then step tsc 120 tsc -p tsconfig.json; else skip tsc "no typescript: dist/ carried from --prepare"; fi
step info 30 node dist/src/cli/main.js info
if python3 -c 'import torch, transformers, safetensors' 2>/dev/null; then
  step hf_fixtures 180 python3 scripts/hf_reference.py
else
  skip hf_fixtures "python3 has no torch + transformers + safetensors"
fi
step tests 300 node --test --test-concurrency=1 "${tests[@]}"
step bench_kernel 60 node dist/bench/scale_add.js
step bench_loss 90 node dist/bench/grpo_loss.js "${loss_args[@]}"
step bench_model 180 node dist/bench/model_step.js "${model_args[@]}"
cp bench/results/*.csv "$OUT/" 2>/dev/null
# A rehearsal's CPU rows do not belong in the committed results.
[[ $mode == dry ]] && git checkout -q -- bench/results 2>/dev/null

# The short table, last: the bench tables, the test counts, then one row per step.
echo
for b in bench_kernel bench_loss bench_model; do
  echo "--- $b"
  tail -n 10 "$OUT/$b.log" # printTable's rows end each bench's output
done
echo "--- tests: $(grep -E '^# (pass|fail|skipped) ' "$OUT/tests.log" | tr '\n' ' ')"
cat "$OUT/gpu.txt" | tail -1
cat "$OUT/summary.txt"
! grep -qE 'rc=[1-9]' "$OUT/summary.txt"
