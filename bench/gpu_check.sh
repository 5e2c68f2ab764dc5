#!/usr/bin/env bash
# The CUDA check, on a machine with a CUDA GPU and the project's packages installed (`make setup`, or torch >= 2.11
# plus requirements.txt's other packages), in about 6 minutes:
#   1. the tests marked `cuda` (tests/test_cuda.py);
#   2. the default pipeline, `dvc repro --force` in a fresh copy with `device: auto`, per-stage times;
#   3. the training benchmark: the canonical recipe against ours, fp32 and bf16, on the GPU;
#   4. the default model trained in fp32 and in bf16 (seed 1), its test NLL with fp32 and bf16 passes.
# Each step runs under its own `timeout`, so one hang cannot eat the run; a failed step does not stop the next.
#
#   VAE_DATA_MIRROR=../shared/data bench/gpu_check.sh [OUT_DIR]
#
# Writes OUT_DIR/results-cuda-{pipeline,train,nll}.json and OUT_DIR/results-cuda-check.log (default OUT_DIR: bench).
# Exit status: the number of failed steps.
set -uo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-bench}")
mkdir -p "$out"
log="$out/results-cuda-check.log"
: >"$log"
: "${VAE_DATA_MIRROR:?set VAE_DATA_MIRROR to the offline mirror of the datasets (e.g. ../shared/data)}"
export VAE_DATA_MIRROR PYTHONUNBUFFERED=1
failed=0

step() {  # step NAME SECONDS COMMAND...: run COMMAND under a time limit, its output into the log
  local name=$1 limit=$2 start rc
  shift 2
  start=$(date +%s)
  echo "== $name (limit ${limit} s): $*" | tee -a "$log"
  timeout --kill-after=10 "$limit" "$@" >>"$log" 2>&1
  rc=$?
  echo "== $name: exit $rc after $(($(date +%s) - start)) s" | tee -a "$log"
  [ "$rc" = 0 ] || failed=$((failed + 1))
}

step environment 30 bash -c 'nvidia-smi; python -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())"'
step download 30 python stages/download.py  # data/raw, which the benchmarks read
parallel=()
python -c "import xdist" 2>/dev/null && parallel=(-n 4)  # pytest-xdist, where installed
step cuda-tests 150 python -m pytest -m cuda -q -ra -p no:cacheprovider --durations=10 "${parallel[@]}" tests/test_cuda.py
step pipeline 210 python bench/pipeline_times.py --budget 180 --out "$out/results-cuda-pipeline.json"
step train-benchmark 80 python bench/benchmark.py --only train --device cuda --repeats 3 --out "$out/results-cuda-train.json"
step nll-benchmark 90 python bench/benchmark.py --only nll --device cuda --repeats 1 --nll-seeds 1 --out "$out/results-cuda-nll.json"
echo "== $failed step(s) failed" | tee -a "$log"
exit "$failed"
