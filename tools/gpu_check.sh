#!/usr/bin/env bash
# tools/gpu_check.sh — GPU validation in one command, for a machine with an NVIDIA GPU:
#   1. configure + build (CUDA on, arch 90),
#   2. the whole test suite through CTest (GPU tests included),
#   3. the GPU test cases again under compute-sanitizer memcheck (allocator cache bypassed),
#   4. the kernel lab (fmbench) when it was built, and its table drawn as bar charts,
# and a short summary last: GPU name, passed / failed / skipped.
# FM_SKIP_CTEST=1 skips step 2, FM_SKIP_SANITIZER=1 step 3 and FM_SKIP_BENCH=1 step 4, to split the
# check across calls (FM_SKIP_CTEST=1 FM_SKIP_BENCH=1: the memcheck pass alone).
#
# Headers and libraries the machine cannot install come from .deps/ (tools/fetch_device_deps.sh),
# used when present. Logs go to build-gpu/logs; with $OUT set (the device tool brings back at most 8
# files) they are packed into $OUT/gpu_check_logs.tar.gz after each step and on exit (written beside
# it and renamed over it, so a kill mid-write leaves the previous archive whole), with fmbench's CSV
# and its two charts copied beside it. FM_SANITIZER_LIMIT_S (default 300) bounds each memcheck run.
set -uo pipefail
cd "$(dirname "$0")/.."
build_dir=build-gpu
logs="$build_dir/logs"
rm -rf "$logs" && mkdir -p "$logs"
save_logs() {
  [[ -n "${OUT:-}" ]] || return 0
  tar czf "$OUT/gpu_check_logs.tar.gz.part" -C "$logs" . 2>/dev/null &&
    mv -f "$OUT/gpu_check_logs.tar.gz.part" "$OUT/gpu_check_logs.tar.gz"
  cp "$logs"/fmbench.csv "$logs"/fmbench_*.png "$OUT"/ 2>/dev/null
  return 0
}
trap save_logs EXIT
export PATH=/usr/local/cuda/bin:$PATH

cmake_args=(-S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFM_CUDA=ON)
if [[ -d .deps/root/usr ]]; then
  deps="$PWD/.deps/root/usr"
  cmake_args+=(-DCMAKE_PREFIX_PATH="$deps" -DFM_STB_INCLUDE="$deps/include"
               -DFM_STB_LIBRARY="$deps/lib/x86_64-linux-gnu/libstb.so")
  # The data set's default path, for the tests and configs that read Fashion-MNIST.
  if [[ ! -e /usr/share/datasets/fashion-mnist && -d "$deps/share/datasets/fashion-mnist" ]]; then
    mkdir -p /usr/share/datasets && ln -s "$deps/share/datasets/fashion-mnist" /usr/share/datasets/fashion-mnist
  fi
fi
command -v ninja >/dev/null || cmake_args[3]="Unix Makefiles"

gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
echo "gpu_check: $(date -u +%Y-%m-%dT%H:%MZ) on ${gpu_name:-no GPU found}"

# Keep going past a file that fails (-k): the binaries that did build are still run (ctest reports
# the missing ones as not run), so one compiler incompatibility does not cost the whole device call.
status_build=ok
keep_going=(-k 0); [[ ${cmake_args[3]} == Ninja ]] || keep_going=(-k)
{ cmake "${cmake_args[@]}" && cmake --build "$build_dir" -j "$(nproc)" -- "${keep_going[@]}"; } >"$logs/build.log" 2>&1 \
  || status_build=FAILED
echo "build: $status_build (log: $logs/build.log)"
save_logs
if [[ $status_build != ok ]]; then
  grep -E "error|Error" "$logs/build.log" | head -10
  [[ -f $build_dir/CTestTestfile.cmake ]] || exit 1
fi

ctest_rc=0 summary="not run (FM_SKIP_CTEST=1)" skipped=0
if [[ "${FM_SKIP_CTEST:-0}" != 1 ]]; then
  (cd "$build_dir" && ctest -j 8 --timeout 900 --output-on-failure) >"$logs/ctest.log" 2>&1
  ctest_rc=$?
  summary=$(grep -E "tests passed|tests failed" "$logs/ctest.log" | tail -1)
  skipped=$(grep -c "(Skipped)" "$logs/ctest.log")
  echo "ctest: ${summary:-no summary} ; skipped: $skipped (log: $logs/ctest.log)"
  grep -E "\(Failed\)|\(Timeout\)|\(SEGFAULT\)|Exception" "$logs/ctest.log" | head -20
  save_logs
else
  echo "ctest: skipped (FM_SKIP_CTEST=1)"
fi

# compute-sanitizer over every test binary's GPU cases, with the allocator cache off so each
# buffer is a real allocation the sanitizer can bound-check.
sanitizer_fail=0
if [[ "${FM_SKIP_SANITIZER:-0}" == 1 ]]; then
  echo "compute-sanitizer: skipped (FM_SKIP_SANITIZER=1)"
elif command -v compute-sanitizer >/dev/null; then
  for bin in "$build_dir"/bin/test_*; do
    name=$(basename "$bin")
    # Only binaries with GPU cases (Catch exits non-zero when a filter matches nothing).
    "$bin" "[gpu]" --list-test-names-only 2>/dev/null | grep -q . || continue
    FM_CUDA_ALLOCATOR=direct timeout -k 5 "${FM_SANITIZER_LIMIT_S:-300}" \
      compute-sanitizer --tool memcheck --error-exitcode 99 --print-limit 20 \
      "$bin" "[gpu]" >"$logs/sanitizer_$name.log" 2>&1
    rc=$?
    if [[ $rc -ne 0 ]]; then
      sanitizer_fail=$((sanitizer_fail + 1))
      echo "compute-sanitizer: $name FAILED (rc $rc; 124 = over FM_SANITIZER_LIMIT_S; log: $logs/sanitizer_$name.log)"
      grep -E "ERROR SUMMARY|Invalid|FAILED" "$logs/sanitizer_$name.log" | head -5
    fi
    save_logs
  done
  echo "compute-sanitizer memcheck: $sanitizer_fail test binaries with errors"
else
  echo "compute-sanitizer: not found"
fi

if [[ -x "$build_dir/bin/fmbench" && "${FM_SKIP_BENCH:-0}" != 1 ]]; then
  "$build_dir/bin/fmbench" all --csv "$logs/fmbench.csv" >"$logs/fmbench.log" 2>&1
  echo "fmbench: rc $? (log: $logs/fmbench.log, table: $logs/fmbench.csv)"
  # The same table as two bar charts against the targets (fmbench_bandwidth.png, fmbench_vs_library.png).
  "$build_dir/bin/fmbench" plot --csv "$logs/fmbench.csv" --out "$logs/fmbench" >/dev/null 2>&1 ||
    echo "fmbench plot: failed"
  tail -60 "$logs/fmbench.log"
  save_logs
fi

# The same U-Net in PyTorch on the same machine, for the speed ratio (when PyTorch is installed).
if python3 -c "import torch" 2>/dev/null && [[ "${FM_SKIP_BENCH:-0}" != 1 ]]; then
  python3 bench/unet_pytorch.py >"$logs/unet_pytorch.log" 2>&1
  echo "pytorch reference: rc $? (log: $logs/unet_pytorch.log)"
  tail -5 "$logs/unet_pytorch.log"
fi

echo "SUMMARY gpu=\"${gpu_name:-none}\" build=$status_build ctest=\"$summary\" skipped=$skipped sanitizer_failures=$sanitizer_fail"
[[ $ctest_rc -eq 0 && $sanitizer_fail -eq 0 ]]
