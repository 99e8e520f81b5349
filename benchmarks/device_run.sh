#!/usr/bin/env bash
# Everything for one call on the NVIDIA device: versions, the CUDA build of both extension modules
# (native _C and RDNA3-emulation _C_rdna3_emu), their build facts, the test suite and, when it
# exists, the GEMM benchmark. Exit status is non-zero when any step fails.
#
#   bash benchmarks/device_run.sh
#
# Environment:
#   OUT                  where logs and results go (the device tool sets it; default ./device_out)
#   DEVICE_RUN_TESTS     pytest arguments instead of "tests", e.g. "tests/test_native_ops.py -k bf16";
#                        "0" skips the tests
#   DEVICE_RUN_BENCH     1 (default): benchmarks/bench_gemm.py; quick: with --quick; 0: skip
#   DEVICE_RUN_BF16      1: also benchmarks/bench_gemm.py --quick --dtype bfloat16 (default 0)
#   DEVICE_RUN_TUNE_DOT2 1: also build and run benchmarks/tune_dot2.cu: native (symmetric, with zero
#                        points, with the weights left in L2) and emulation (default 0)
#   DEVICE_RUN_SWEEP_BLOCKS 1: also the decode block-size sweep of benchmarks/decode_notes.md: the
#                        native tuner on 16 layer shapes at the plan's splits: the plan's choice, each
#                        block size alone, the plan's choice again, then with zero points (default 0)
#   DEVICE_RUN_SWEEP_AGAINST a copy of another csrc/ in the working tree (untracked): the sweep also
#                        times that tree's plan, before each of main's plan runs, in the same call
#   TORCH_CUDA_ARCH_LIST default 9.0 (Hopper: the H100 and H200)
set -uo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-$PWD/device_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
failures=()

step() { printf '\n=== %s (at %d s)\n' "$*" "$SECONDS"; }  # the time since the start: what fits one call
failed() { echo "FAILED: $*"; failures+=("$*"); }

step "versions"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || failed "nvidia-smi"
python3 -c "import sys, torch, triton; print('python', sys.version.split()[0], '| torch', torch.__version__,
  '| CUDA', torch.version.cuda, '| triton', triton.__version__, '| GPU', torch.cuda.get_device_name(0))" \
  || failed "torch/triton import"
nvcc --version | tail -n 2
cmake --version | head -n 1

step "build (log: $OUT/build.log)"
start=$SECONDS
if MAX_JOBS=16 TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} W4A16_RDNA3_BUILD=1 \
    python3 -m pip install --no-build-isolation --no-deps --no-index -v -e . >"$OUT/build.log" 2>&1; then
  echo "built in $((SECONDS - start)) s"
else
  tail -n 60 "$OUT/build.log"
  echo "FAILED: build (see $OUT/build.log); nothing else can run"
  exit 1
fi

step "build_info"
for module in w4a16_rdna3._C w4a16_rdna3._C_rdna3_emu; do
  python3 -c "import importlib, torch; m = importlib.import_module('$module'); print('$module', m.build_info())" \
    || failed "import $module"
done

tests=${DEVICE_RUN_TESTS:-tests}
if [ "$tests" != "0" ]; then
  step "pytest $tests (log: $OUT/pytest.log)"
  # shellcheck disable=SC2086  # DEVICE_RUN_TESTS is a list of pytest arguments
  python3 -m pytest -q -rs --junitxml="$OUT/junit.xml" $tests 2>&1 | tee "$OUT/pytest.log"
  status=${PIPESTATUS[0]}
  if [ "$status" -eq 5 ]; then
    failed "pytest collected no tests from: $tests"
  elif [ "$status" -ne 0 ]; then
    failed "pytest (exit $status)"
  fi
fi

bench=${DEVICE_RUN_BENCH:-1}
if [ "$bench" != "0" ]; then
  if [ -f benchmarks/bench_gemm.py ]; then
    step "benchmarks/bench_gemm.py (results in $OUT)"
    quick=()
    if [ "$bench" = "quick" ]; then
      quick=(--quick)
    fi
    python3 benchmarks/bench_gemm.py --out "$OUT" "${quick[@]}" || failed "bench_gemm.py"
  else
    echo "benchmarks/bench_gemm.py not present: no benchmark run"
  fi
fi

if [ "${DEVICE_RUN_BF16:-0}" = "1" ]; then
  step "benchmarks/bench_gemm.py --quick --dtype bfloat16"
  python3 benchmarks/bench_gemm.py --quick --dtype bfloat16 --out "$OUT" || failed "bench_gemm.py bf16"
fi

# build_tuner CSRC_DIR BINARY native|emulation: benchmarks/tune_dot2.cu against those sources.
build_tuner() {
  local arch flags=()
  arch=sm_$(echo "${TORCH_CUDA_ARCH_LIST:-9.0}" | cut -d';' -f1 | tr -d '.')
  if [ "$3" = "emulation" ]; then
    flags=(-DW4A16_RDNA3_EMULATION)
  elif [ "${arch#sm_}" -ge 90 ]; then
    # As CMakeLists.txt builds the native module: decode K splits meet in clusters from sm_90 on.
    flags=(-DW4A16_CUDA_CLUSTERS)
  fi
  nvcc -arch="$arch" -std=c++17 -O3 "${flags[@]}" -I "$1" -o "$2" benchmarks/tune_dot2.cu
}

if [ "${DEVICE_RUN_TUNE_DOT2:-0}" = "1" ]; then
  step "benchmarks/tune_dot2.cu (results in $OUT/tune_dot2.md)"
  tuner=$(mktemp -d)
  if build_tuner csrc "$tuner/native" native && build_tuner csrc "$tuner/emulation" emulation; then
    { "$tuner/native" native && "$tuner/native" native zeros && "$tuner/native" native l2 &&
        "$tuner/emulation" rdna3-emulation; } |
      tee "$OUT/tune_dot2.md" || failed "tune_dot2"
  else
    failed "tune_dot2 build"
  fi
fi

if [ "${DEVICE_RUN_SWEEP_BLOCKS:-0}" = "1" ]; then
  step "decode block-size sweep (results in $OUT/sweep_blocks.md)"
  sweep=$(mktemp -d)
  against=${DEVICE_RUN_SWEEP_AGAINST:-}
  shapes=4096x6144,4096x4096,4096x28672,14336x4096,4096x14336,5120x27648,27648x5120,8192x10240
  shapes+=,8192x57344,28672x8192,1536x17920,2048x22528,3584x37888,5120x13824,8192x28672,4096x11008
  # against_plan LABEL [zeros]: the other tree's plan, when there is one.
  against_plan() { [ -z "$against" ] || "$sweep/against" "$against: $1" "${@:2}"; }
  if build_tuner csrc "$sweep/main" native && { [ -z "$against" ] || build_tuner "$against" "$sweep/against" native; }; then
    export TUNE_SPLITS=0 TUNE_SHAPES=$shapes
    { against_plan "plan" && "$sweep/main" "main: plan" &&
        for warps in 16 8 4; do TUNE_WARPS=$warps "$sweep/main" "main: blocks of $warps warps"; done &&
        against_plan "plan, again" && "$sweep/main" "main: plan, again" &&
        against_plan "plan" zeros && "$sweep/main" "main: plan" zeros; } |
      tee "$OUT/sweep_blocks.md" || failed "sweep"
    unset TUNE_SPLITS TUNE_SHAPES
  else
    failed "sweep: tuner build"
  fi
fi

step "summary"
if [ "${#failures[@]}" -ne 0 ]; then
  printf 'FAILED: %s\n' "${failures[@]}"
  exit 1
fi
echo "all steps passed"
