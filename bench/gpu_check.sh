#!/usr/bin/env bash
# The CUDA check, on a machine with a CUDA GPU and the project's packages installed (`make setup`, or torch >= 2.11
# plus requirements.txt's other packages). Steps, in this order:
#   environment      nvidia-smi, torch's CUDA
#   download         data/raw, which the benchmarks read
#   pipeline         `dvc repro --force` of the default pipeline in a fresh copy, `device: auto`: per-stage times
#   train-benchmark  the canonical recipe's epoch against ours, fp32 and bf16, on the GPU
#   cuda-tests       the tests marked `cuda` (tests/test_cuda.py)
#   nll-benchmark    the default model trained in fp32 and in bf16 (seed 1), its test NLL with fp32 and bf16 passes
# Each step runs under its own time limit, so one hang cannot eat the run; an overrun step is interrupted (SIGINT:
# pytest and bench/pipeline_times.py still report what they did) and a failed step does not stop the next.
#
#   VAE_DATA_MIRROR=../shared/data bench/gpu_check.sh [OUT_DIR [STEP...]]
#
# Writes OUT_DIR/results-cuda-{pipeline,train,nll}.json and OUT_DIR/results-cuda-check.log (default OUT_DIR: bench).
# Exit status: the number of failed steps.
set -uo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-bench}")
shift $(($# > 0 ? 1 : 0))
steps=("${@:-environment download pipeline train-benchmark cuda-tests nll-benchmark}")
steps=(${steps[*]})
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
  timeout --signal=INT --kill-after=20 "$limit" "$@" >>"$log" 2>&1
  rc=$?
  echo "== $name: exit $rc after $(($(date +%s) - start)) s" | tee -a "$log"
  [ "$rc" = 0 ] || failed=$((failed + 1))
}

for name in "${steps[@]}"; do
  case $name in
    environment) step "$name" 30 bash -c 'nvidia-smi; python -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())"' ;;
    download) step "$name" 30 python stages/download.py ;;
    pipeline) step "$name" 190 python bench/pipeline_times.py --budget 180 --out "$out/results-cuda-pipeline.json" ;;
    train-benchmark) step "$name" 80 python bench/benchmark.py --only train --device cuda --repeats 1 \
                       --out "$out/results-cuda-train.json" ;;
    cuda-tests) step "$name" 240 python -m pytest -m cuda -v --tb=short -ra -p no:cacheprovider --durations=15 \
                  tests/test_cuda.py ${CUDA_TESTS:+-k "$CUDA_TESTS"} ;;
    nll-benchmark) step "$name" 150 python bench/benchmark.py --only nll --device cuda --repeats 1 --nll-seeds 1 \
                     --out "$out/results-cuda-nll.json" ;;
    *) echo "unknown step $name" | tee -a "$log"; failed=$((failed + 1)) ;;
  esac
done
echo "== $failed step(s) failed" | tee -a "$log"
exit "$failed"
