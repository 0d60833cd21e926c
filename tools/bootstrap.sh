#!/usr/bin/env bash
# tools/bootstrap.sh — one-command set-up on a fresh Debian machine with the CUDA toolkit.
#
#   bash tools/bootstrap.sh run [CONFIG]   install what is missing, build, train CONFIG (default
#                                          configs/moons.json) with fmtrain
#   bash tools/bootstrap.sh test           install what is missing, build, run the whole suite (CTest),
#                                          then the GPU cases again on the CUDA emulator (no GPU needed)
#
# Missing Debian packages are installed with apt-get (run as root). CUDA is used when nvcc is found
# (it need not have a GPU: GPU tests then report themselves as skipped). Set FM_BUILD_DIR to build
# elsewhere (default: build/; the emulator build goes to <dir>-emulator), FM_JOBS to limit parallel
# compile jobs, FM_SKIP_EMULATOR=1 to skip the emulated GPU tests, FM_SKIP_SANITIZERS=1 to skip the
# CPU suite under AddressSanitizer + UndefinedBehaviorSanitizer (<dir>-sanitize).
set -euo pipefail
cd "$(dirname "$0")/.."
repo_root="$PWD"

mode="${1:-}"
if [[ "$mode" != "run" && "$mode" != "test" ]]; then
  echo "usage: bash tools/bootstrap.sh run [CONFIG] | test" >&2
  exit 2
fi

# libopenmpi-dev (headers, libraries, the mpicxx wrapper CMake's find_package(MPI) asks) and openmpi-bin
# (mpirun): data-parallel runs, and the tests that launch them (tests/test_data_parallel.cpp).
# python3: the tests of docs commands and device scripts, and the kernel preflight.
packages=(cmake ninja-build g++ catch2 nlohmann-json3-dev libstb-dev zlib1g-dev libgif-dev dataset-fashion-mnist
          libopenmpi-dev openmpi-bin python3)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "bootstrap: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# nvcc is often installed outside PATH.
if ! command -v nvcc >/dev/null && [[ -x /usr/local/cuda/bin/nvcc ]]; then
  export PATH=/usr/local/cuda/bin:$PATH
fi

build_dir="${FM_BUILD_DIR:-build}"
jobs="${FM_JOBS:-$(nproc)}"
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build_dir" -j "$jobs"

if [[ "$mode" == "run" ]]; then
  config="${2:-configs/moons.json}"
  exec "$build_dir/bin/fmtrain" "$config"
fi

# The interoperability test opens our files with numpy and safetensors when they can be had.
if command -v python3 >/dev/null && ! python3 -c "import numpy, safetensors" 2>/dev/null; then
  python3 -m pip install -q numpy safetensors >/dev/null 2>&1 ||
    echo "bootstrap: numpy/safetensors not installable; the python interop test will be skipped" >&2
fi
cd "$build_dir"
# Tests run side by side, one per core: each single-threaded, so OpenMP threads of one test never
# wait on a core another test holds (oversubscribed OpenMP barriers are very slow).
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
ctest --output-on-failure -j "$jobs" --timeout 1200
cd - >/dev/null

# The GPU cases once more, on the CUDA emulator (kernels/cuda_emulator/, docs/cuda_emulator.md): our
# CUDA kernels compiled for the CPU, each GPU thread a fiber, so a machine without a GPU still checks
# their indexing, tile edges, barriers and shuffles against the CPU references. (Not cuDNN, not speed.)
# FM_SKIP_EMULATOR=1 leaves it out.
if [[ "${FM_SKIP_EMULATOR:-0}" != 1 ]]; then
  cd "$repo_root"
  emulator_dir="${build_dir}-emulator"
  cmake -S . -B "$emulator_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFM_CUDA_EMULATOR=ON >/dev/null
  cmake --build "$emulator_dir" -j "$jobs"
  cd "$emulator_dir"
  # Each distinct launch the emulated tests make (kernel, threads, dynamic shared memory) goes to
  # kernel_launches.log, for the resource check below.
  rm -f kernel_launches.log
  FM_EMU_LAUNCH_LOG="$PWD/kernel_launches.log" ctest --output-on-failure -j "$jobs" --timeout 1200
  # The kernel-level cases twice more, under other thread and block orders (FM_EMU_SEED): a missing
  # barrier that the default interleaving happens to hide may show under another (about 1 minute
  # on 2 cores). The second time with the shared-memory race check on as well (FM_EMU_RACECHECK:
  # two threads writing one shared byte between barriers stop the test; about 4 minutes).
  echo "emulated kernel cases under FM_EMU_SEED=1"
  FM_EMU_SEED=1 ctest --output-on-failure -j "$jobs" --timeout 1200 -R "^emulated test_(kernel_|cuda_emulator)"
  echo "emulated kernel cases under FM_EMU_SEED=2 with the shared-memory race check"
  FM_EMU_SEED=2 FM_EMU_RACECHECK=1 ctest --output-on-failure -j "$jobs" --timeout 1800 -R "^emulated test_kernel_"
  # Would those launches start on a GPU? ptxas's registers and shared memory for every kernel of the
  # CUDA build against the launches just logged (tools/kernel_preflight.py, docs/cuda_emulator.md):
  # a block needing more registers or shared memory than it may have, or more threads than its
  # __launch_bounds__, fails here, and so does a kernel that no emulated test launched; spills and
  # occupancy are reported (the table: <emulator dir>/kernel_preflight.md).
  cd "$repo_root"
  if ! grep -q "^FM_CUDA:BOOL=ON" "$build_dir/CMakeCache.txt"; then
    echo "kernel preflight: skipped (the build above is CPU-only: no nvcc, or FM_CUDA=OFF)"
  elif ! command -v python3 >/dev/null; then
    echo "kernel preflight: skipped (no python3)"
  else
    python3 tools/kernel_preflight.py --cuda-build "$build_dir" --launch-log "$emulator_dir/kernel_launches.log" \
      --require-all-launched --report "$emulator_dir/kernel_preflight.md" --jobs "$jobs"
  fi
fi

# The CPU suite once more, built with AddressSanitizer + UndefinedBehaviorSanitizer (FM_SANITIZE, a
# CPU-only build): any out-of-bounds access, use after free, leak or undefined behaviour in the host
# code, the parsers and the tools fails its test. It is compiled for the x86-64 baseline (no AVX), so
# CI also runs the code a CPU without AVX2 would get. FM_SKIP_SANITIZERS=1 leaves it out.
if [[ "${FM_SKIP_SANITIZERS:-0}" != 1 ]]; then
  cd "$repo_root"
  sanitize_dir="${build_dir}-sanitize"
  cmake -S . -B "$sanitize_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFM_CUDA=OFF -DFM_SANITIZE=ON \
    -DFM_HOST_ISA=x86-64 >/dev/null
  cmake --build "$sanitize_dir" -j "$jobs"
  cd "$sanitize_dir"
  ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:strict_string_checks=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --output-on-failure -j "$jobs" --timeout 1800
fi
