#!/usr/bin/env bash
# Every GPU check of issue 20 in one prepared run, on a lent NVIDIA H100/H200 (docs/scaling.md).
#
# Here, once, with the network (the lent machine reaches nothing outside it):
#     bash experiments/gpu_check.sh prepare
# writes .whl/ (ignored by git): wheels for Python 3.12 of the project's dependencies that the
# lent machine's image lacks, at this environment's versions. Then, through the device tool:
#     run(command="bash experiments/gpu_check.sh", carry=[".whl"], timeout_s=600)
# There it uses the image's JAX with its CUDA plugin (or, where pip reaches an index, installs
# the CUDA build of the installed JAX version), and runs, each stage under its own time limit
# and in this order so that the most wanted figures come first:
#   1. the device (nvidia-smi, jax.devices())                          → $OUT/device.txt
#   2. the benchmark, float32 then bfloat16: one model, 8 folds vmapped (what training picks
#      on a GPU) and 8 folds one after another, model FLOP utilisation against the
#      datasheet peak                                                   → $OUT/benchmark_{float32,bfloat16}.json
#   3. configs/default.py end to end                                    → $OUT/default_results.json
#   4. configs/paper.py end to end with PAPER_STEPS steps (default 100 of the config's
#      20,000, to fit the device budget: a reduced run, said so in its results; the
#      19-participant dataset is built first, which takes minutes)    → $OUT/paper_results.json
#   5. the test suite's GPU-relevant tests (those whose programs run on the default
#      device; the multi-device ones force CPU devices)                 → $OUT/tests.txt
# Every log line, with the device name, goes to $OUT/gpu_check.log. BUDGET_S (default 540)
# bounds the whole script: a stage that cannot start with time left is skipped, and says so.
# GPU_CHECK_SMOKE=1 runs the same stages tiny on whatever backend is there (a check of the
# script on a CPU).
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

if [[ "${1:-}" == "prepare" ]]; then
  set -e
  rm -rf .whl && mkdir -p .whl
  # Missing from the lent image (its package list: the device tool's KINDS.md); pinned to what this environment tests.
  missing="tensorflow-datasets array-record grain ml-collections av pydicom tensorboardX submitit dm-tree immutabledict
           promise simple-parsing tensorflow-metadata termcolor toml portpicker docstring-parser googleapis-common-protos
           importlib-resources"
  for name in $missing; do
    pinned=$(python -m pip freeze 2>/dev/null | grep -i -E "^${name//-/[-_.]}==" || true)
    [[ -n "$pinned" ]] || { echo "error: $name is not installed here; install the project first (pip install -e .)" >&2; exit 1; }
    python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      --platform any -d .whl "$pinned" 2>/dev/null || python -m pip wheel -q --no-deps -w .whl "$pinned"
  done
  du -sh .whl && ls .whl
  exit 0
fi

OUT=${OUT:-$REPO/runs/gpu_check}
mkdir -p "$OUT"
BUDGET_S=${BUDGET_S:-540}
PAPER_STEPS=${PAPER_STEPS:-100}
SMOKE=${GPU_CHECK_SMOKE:-0}
PY=${PYTHON:-python3}
START=$(date +%s)
LOG="$OUT/gpu_check.log"
export PYTHONUNBUFFERED=1 MUSCLE_JAX_CACHE=/tmp/muscle_jax_cache

log() { echo "[$(date +%T) +$(( $(date +%s) - START ))s] $*" | tee -a "$LOG"; }
left() { echo $(( BUDGET_S - ($(date +%s) - START) )); }
# stage NAME MIN_SECONDS COMMAND...: runs COMMAND (output to the log) under the time left, if at least MIN_SECONDS are.
stage() {
  local name=$1 need=$2; shift 2
  if (( $(left) < need )); then log "SKIPPED $name: $(left) s left, it needs about $need"; return 0; fi
  log "START $name"
  timeout --signal=INT "$(left)" "$@" >>"$LOG" 2>&1
  local status=$?
  log "END $name: exit $status"
}

# 1. Environment: the project's missing dependencies from .whl; JAX's CUDA build.
if [[ -d .whl ]] && ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl >>"$LOG" 2>&1 \
    && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}
jax_version=$($PY -c 'import jax; print(jax.__version__)')
if [[ "$SMOKE" != 1 ]] && ! $PY -c 'import jax, sys; sys.exit(jax.default_backend() != "gpu")' 2>/dev/null; then
  # A machine that reaches an index gets the CUDA build of the installed JAX (cuda12 for CUDA 12 drivers).
  $PY -m pip install -q "jax[cuda13]==$jax_version" >>"$LOG" 2>&1 || true
  $PY -c 'import jax, sys; sys.exit(jax.default_backend() != "gpu")' \
    || { log "error: JAX $jax_version sees no GPU here and its CUDA build could not be installed"; exit 1; }
fi
{
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>/dev/null || echo "no nvidia-smi"
  $PY -c 'import jax, jaxlib; print("jax", jax.__version__, "jaxlib", jaxlib.__version__, "backend", jax.default_backend()); print("devices", [d.device_kind for d in jax.devices()])'
  nproc; uptime
} >"$OUT/device.txt" 2>&1
DEVICE=$($PY -c 'import jax; print(jax.devices()[0].device_kind)')
log "device: $DEVICE; jax $jax_version; budget $BUDGET_S s; smoke $SMOKE"

if [[ "$SMOKE" == 1 ]]; then
  BENCH_SIZE=(--config.benchmark.num_folds=2 --config.train.batch_size=4 "--config.benchmark.image_hw=(16, 16)"
              "--config.model.channels=(4, 8)" --config.model.hidden=8 --config.benchmark.warmup_steps=1
              --config.benchmark.repeats=2 --config.benchmark.peak_matmul_size=256 --config.benchmark.input_pipeline_steps=2
              --config.dataset.builder_config=phantom_smoke)
  DEFAULT_CONFIG=configs/smoke.py; PAPER_CONFIG=configs/smoke.py; PAPER_STEPS=4
  DATA=(--config.dataset.data_dir=/tmp/gpu_check_tfds); TESTS=(tests/test_mixed_precision.py)
else
  BENCH_SIZE=(--config.benchmark.repeats=20 --config.benchmark.peak_matmul_size=8192)
  DEFAULT_CONFIG=configs/default.py; PAPER_CONFIG=configs/paper.py
  DATA=(--config.dataset.data_dir=/tmp/gpu_check_tfds)
  TESTS=(tests/test_mixed_precision.py tests/test_runtime.py tests/test_train.py tests/test_models.py
         tests/test_runtime_conv.py tests/test_evaluate.py)
fi

# 2. The benchmark: XLA's own convolution (the CPU formulations are CPU levers), the fold
#    execution training picks on a GPU (vmap) against K models one after another.
for dtype in float32 bfloat16; do
  stage "benchmark $dtype" 90 $PY experiments/benchmark.py --config=configs/benchmark.py --json="$OUT/benchmark_$dtype.json" \
    --config.runtime.conv=xla "--config.benchmark.single_convs=('xla',)" "--config.benchmark.fold_executions=('vmap',)" \
    --config.runtime.compute_dtype=$dtype "${BENCH_SIZE[@]}" "${DATA[@]}"
done

# 3. The default config end to end (dataset build included).
stage "default config" 120 $PY -m muscle_jax.main --config=$DEFAULT_CONFIG --workdir=/tmp/gpu_check_default "${DATA[@]}" \
  && cp /tmp/gpu_check_default/results.json "$OUT/default_results.json" 2>/dev/null \
  && cat /tmp/gpu_check_default/results.md >>"$LOG" 2>/dev/null

# 4. Paper scale end to end, PAPER_STEPS steps (the whole run is the config's 20,000).
stage "paper config, $PAPER_STEPS steps" 180 $PY -m muscle_jax.main --config=$PAPER_CONFIG --workdir=/tmp/gpu_check_paper \
  "${DATA[@]}" --config.train.num_steps=$PAPER_STEPS --config.train.warmup_steps=$(( PAPER_STEPS / 10 )) \
  --config.train.log_every=$(( PAPER_STEPS / 4 > 0 ? PAPER_STEPS / 4 : 1 )) --config.train.checkpoint_every=$PAPER_STEPS \
  --config.train.input_threads=$(nproc) \
  && cp /tmp/gpu_check_paper/results.json "$OUT/paper_results.json" 2>/dev/null \
  && cat /tmp/gpu_check_paper/results.md >>"$LOG" 2>/dev/null

# 5. The GPU-relevant tests (the suite's own fixtures build their tiny dataset).
stage "tests" 90 $PY -m pytest -q -p no:cacheprovider "${TESTS[@]}" --durations=10
grep -E "passed|failed|error" "$LOG" | tail -n 3 >"$OUT/tests.txt"

log "done on $DEVICE in $(( $(date +%s) - START )) s; files: $(ls "$OUT" | tr '\n' ' ')"
