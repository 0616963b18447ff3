#!/usr/bin/env bash
# One call on an NVIDIA machine (the device tool): build against the PyTorch libtorch with CUDA,
# run the test suite (CUDA tests included), make the HF reference fixtures, run the benchmarks,
# and leave logs/CSVs under $OUT (default ./gpu-out). Prints a short table last.
#   run: bash bench/gpu.sh      (expects node; carry .device/node.xz if the image has none)
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT="${OUT:-$PWD/gpu-out}"
mkdir -p "$OUT"
if ! command -v node >/dev/null && [[ -f .device/node.xz ]]; then
  mkdir -p /tmp/nodebin && xz -dc .device/node.xz > /tmp/nodebin/node && chmod +x /tmp/nodebin/node
  export PATH="/tmp/nodebin:$PATH"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
# CMakeLists finds python3's PyTorch (with CUDA) by itself; MEDGR2_CUDA=ON makes a miss an error.
step() { local name=$1; shift; echo "== $name"; ( "$@" ) > "$OUT/$name.log" 2>&1; echo "$name rc=$?" | tee -a "$OUT/summary.txt"; }
step build npx cmake-js compile --out build --CDMEDGR2_CUDA=ON --CDCMAKE_CUDA_ARCHITECTURES=90 --log-level warn
step tsc npx tsc -p tsconfig.json
step info node dist/src/cli/main.js info
step hf_fixtures python3 scripts/hf_reference.py
step tests node --test --test-concurrency=1 dist/test/
step bench_loss node dist/bench/grpo_loss.js 16777216
step bench_logprob node dist/bench/fused_logprob.js 4096 16384
step bench_model node dist/bench/model_step.js --shape 3b
cp bench/results/*.csv "$OUT/" 2>/dev/null
echo; cat "$OUT/summary.txt"; grep -E "^# (pass|fail|skipped)" "$OUT/tests.log"
