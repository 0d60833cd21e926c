#!/usr/bin/env bash
# tools/gpu_bench.sh — issue 14's side-by-side table in one device call (sized for ≤ 8 minutes on an
# H100/H200): our U-Net training step against the identical model in PyTorch in every precision a
# user runs, on the same GPU, in the same call.
#
#   1. build fmbench, fmtrain and the test binaries with GPU cases (CUDA on, arch 90),
#   2. the GPU test cases ("[gpu]") of every test binary (the full suite + sanitizer: tools/gpu_check.sh),
#   3. `fmbench step` (launches, syncs, allocations, copies per step) and `fmbench unet` (the seed U-Net's
#      step at batch 256, our kernels and cuDNN/cuBLAS), then again with FM_PRECISION=tf32 and bf16,
#   4. bench/unet_pytorch.py for the same step: strict FP32 (cudnn.benchmark off and on), PyTorch's
#      defaults (TF32 convolutions), TF32 everywhere, bf16 autocast, then torch.compile
#      (mode max-autotune) in TF32 and in bf16: each run in its own process with a time limit,
#   3b. `fmtrain configs/fashion_mnist.json` for 400 steps: the whole loop's images/s against the step's,
#   5. a short table last: images/s of each, and ours (best of custom/library, FP32) / each.
#
# "ours" in the ratio column is our best FP32 row; the TF32 row (WMMA matmul and convolutions,
# docs/ops/tensor_cores.md) is listed beside it, and the bf16 row (bfloat16 WMMA matmul and
# convolutions; attention's products too, in both kernel sets), and the bf16-act row (every activation
# bfloat16, attention included: model.activations = "bfloat16").
# Environment: FM_SKIP_TESTS=1 skips stage 2; FM_TEST_LIMIT_S (default 180) limits each test binary;
# FM_SKIP_COMPILE=1 skips the torch.compile rows; FM_ONLY_COMPILE=1 runs only the build and those rows
# (a second call on a warm machine: the ratio column then stays empty, ours having no row);
# FM_COMPILE_LIMIT_S (default 150) limits each compiled run, FM_COMPILE_MODE (default max-autotune; or
# default) picks torch.compile's mode: max-autotune's bf16 compile of this U-Net did not finish in 506 s
# on an H200 (2026-12-04; it benchmarks ~20 Triton choices per matmul shape), so within one device call
# the compiled rows need their own call or mode default; FM_BATCH (default 256).
# FM_DEADLINE_S (default 480) is the call's budget in seconds, counted from the script's start: a
# stage that would not end inside it is skipped and says so, and every run (the build included) is
# bounded by the time left, so the table is printed inside the device call's limit (pass the tool a
# timeout_s ~60 s above it).
# The test cases leave FM_BENCH_RESERVE_S (default 240) of it to the timings that follow them, but
# take at least 120 s (or what is left) when the build ran long: checking comes before timing.
# Headers and libraries the machine cannot install come from .deps/ (tools/fetch_device_deps.sh).
# Logs and CSVs go to build-gpu/bench_logs; with $OUT set (the device tool brings back at most 8 files)
# they are packed into $OUT/gpu_bench_logs.tar.gz (written beside and renamed over it, so a kill
# mid-write leaves the previous archive whole), and the CSVs copied beside it, after every stage and
# on exit: a call cut off by the tool's limit still brings back everything measured before the cut.
set -uo pipefail
cd "$(dirname "$0")/.."
build_dir=build-gpu
logs="$build_dir/bench_logs"
rm -rf "$logs" && mkdir -p "$logs"
export PATH=/usr/local/cuda/bin:$PATH
batch="${FM_BATCH:-256}"
compile_limit="${FM_COMPILE_LIMIT_S:-150}"
compile_mode="${FM_COMPILE_MODE:-max-autotune}"
deadline="${FM_DEADLINE_S:-480}"
bench_reserve="${FM_BENCH_RESERVE_S:-240}"
only_compile="${FM_ONLY_COMPILE:-0}"
started=$(date +%s)
elapsed() { echo "$(( $(date +%s) - started )) s"; }
seconds_left() { echo $(( deadline - ($(date +%s) - started) )); }
# fits NEED WHAT: true when a stage of about NEED seconds still ends inside the deadline; else says
# that WHAT is skipped.
fits() {
  (( $(seconds_left) >= $1 )) && return 0
  echo "$2: skipped ($(seconds_left) s left of FM_DEADLINE_S=$deadline, needs about $1 s)"
  return 1
}
# bounded LIMIT CMD...: CMD under `timeout`, at most LIMIT seconds and never past the deadline
# (SIGKILL 5 s after the SIGTERM if it is still there: `timeout` gives it a process group of its own,
# which a kill of this script would not reach).
bounded() {
  local limit="$1" left; shift
  left=$(seconds_left); (( left < limit )) && limit=$left; (( limit < 1 )) && limit=1
  timeout -k 5 "$limit" "$@"
}
# What has been measured so far, into $OUT (when set): called after each stage and on exit.
save_logs() {
  [[ -n "${OUT:-}" ]] || return 0
  tar czf "$OUT/gpu_bench_logs.tar.gz.part" -C "$logs" . 2>/dev/null &&
    mv -f "$OUT/gpu_bench_logs.tar.gz.part" "$OUT/gpu_bench_logs.tar.gz"
  cp "$logs"/*.csv "$OUT"/ 2>/dev/null
  return 0
}
trap save_logs EXIT

cmake_args=(-S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFM_CUDA=ON)
if [[ -d .deps/root/usr ]]; then
  deps="$PWD/.deps/root/usr"
  cmake_args+=(-DCMAKE_PREFIX_PATH="$deps" -DFM_STB_INCLUDE="$deps/include"
               -DFM_STB_LIBRARY="$deps/lib/x86_64-linux-gnu/libstb.so")
fi
command -v ninja >/dev/null || cmake_args[3]="Unix Makefiles"

gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
echo "gpu_bench: $(date -u +%Y-%m-%dT%H:%MZ) on ${gpu_name:-no GPU found}, commit $(git rev-parse --short HEAD 2>/dev/null), deadline ${deadline} s"

# 1. Build only what the bench needs (+ the test binaries of stage 2).
targets=(fmbench fmtrain)
if [[ "${FM_SKIP_TESTS:-0}" != 1 && $only_compile != 1 ]]; then
  for src in tests/test_*.cpp; do
    grep -q "FM_REQUIRE_GPU()" "$src" && targets+=("$(basename "$src" .cpp)")
  done
fi
# Keep going past a file that fails (-k): one compiler incompatibility on the device machine must not
# cost the whole call; what did build is still tested and timed, and the failures are listed.
keep_going=(-k 0); [[ ${cmake_args[3]} == Ninja ]] || keep_going=(-k)
# The build may take all but the last 30 s: past that nothing else could run, but its log comes back.
build_limit=$(( deadline - 30 )); (( build_limit < 10 )) && build_limit=10
if ! { cmake "${cmake_args[@]}" &&
       timeout -k 5 "$build_limit" cmake --build "$build_dir" -j "$(nproc)" --target "${targets[@]}" -- "${keep_going[@]}"; } \
    >"$logs/bench_build.log" 2>&1; then
  missing=()
  for name in "${targets[@]}"; do [[ -x $build_dir/bin/$name ]] || missing+=("$name"); done
  echo "build: FAILED for ${missing[*]:-(no binary missing)} (log: $logs/bench_build.log)"
  grep -E "error|Error" "$logs/bench_build.log" | head -10
  [[ -x $build_dir/bin/fmbench ]] || exit 1
else
  echo "build: ok ($(elapsed))"
fi
save_logs

# 2. The GPU cases: every kernel is checked against its CPU reference before anything is timed.
tests_status="skipped"
left=$(seconds_left)
tests_budget=$(( left - bench_reserve ))
(( tests_budget < 120 )) && tests_budget=$(( left < 120 ? left : 120 ))
if [[ "${FM_SKIP_TESTS:-0}" != 1 && $only_compile != 1 ]] && fits 60 "tests"; then
  # Four binaries at a time (the GPU has room; their answers do not depend on timing), each under a
  # time limit so that one hung binary cannot eat the call: rc 124 is reported as a failure. The
  # stage ends after tests_budget seconds (above): a binary is not started within 30 s of that end
  # (it is listed as not run) and none runs past it.
  test_limit="${FM_TEST_LIMIT_S:-180}"
  # A binary the build could not make counts as failed (rc 127 from the missing file).
  printf '%s\n' "${targets[@]:2}" | xargs -P 4 -I{} bash -c \
    'left=$(( $4 - $(date +%s) )); (( left < 30 )) && { echo "{} not-run"; exit 0; }
     (( left < $1 )) || left=$1
     timeout -k 5 "$left" "$2/bin/{}" "[gpu]" >"$3/bench_tests_{}.log" 2>&1; echo "{} $?"' _ \
    "$test_limit" "$build_dir" "$logs" "$(( $(date +%s) + tests_budget ))" >"$logs/bench_tests_rc.txt"
  failed=0 not_run=0
  while read -r name rc; do
    [[ $rc == 0 ]] && continue
    if [[ $rc == not-run ]]; then not_run=$((not_run + 1)); echo "tests: $name not run (deadline)"; continue; fi
    failed=$((failed + 1)); echo "tests: $name FAILED (rc $rc; 124 = over its time limit; log: $logs/bench_tests_$name.log)"
  done <"$logs/bench_tests_rc.txt"
  ran=$(( ${#targets[@]} - 2 - not_run ))
  tests_status="$(( ran - failed )) of $ran binaries passed"
  (( not_run > 0 )) && tests_status+=", $not_run not run"
  echo "tests: $tests_status ($(elapsed))"
  save_logs
fi

# 3. Ours: counters per step, then the seed U-Net's training step with both kernel sets.
ours_stage() { [[ $only_compile != 1 ]] && fits "$1" "$2"; }  # our timings: not under FM_ONLY_COMPILE
if ours_stage 20 "fmbench step"; then
  bounded 60 "$build_dir/bin/fmbench" step --device cuda >"$logs/bench_step.log" 2>&1
  echo "fmbench step: rc $? ($(elapsed))"
fi
if ours_stage 60 "fmbench unet"; then
  bounded 150 "$build_dir/bin/fmbench" unet --batch "$batch" --csv "$logs/bench_unet.csv" >"$logs/bench_unet.log" 2>&1
  echo "fmbench unet: rc $? ($(elapsed))"
fi
save_logs
# The same with TF32 tensor cores (FM_PRECISION=tf32: our matmul and convolutions on WMMA; with the
# library kernels, cuBLAS TF32 matmuls and cuDNN convolutions with TF32 allowed, spatial algorithms).
if ours_stage 60 "fmbench unet (tf32)"; then
  FM_PRECISION=tf32 bounded 150 "$build_dir/bin/fmbench" unet --batch "$batch" --csv "$logs/bench_unet_tf32.csv" \
    >"$logs/bench_unet_tf32.log" 2>&1
  echo "fmbench unet (tf32): rc $? ($(elapsed))"
fi
# bfloat16 (FM_PRECISION=bf16): our matmul and convolutions on bfloat16 WMMA (with the library kernels,
# cuBLAS FAST_16BF matmuls and cuDNN convolutions in TF32: cuDNN has no bf16 math for FP32 tensors).
if ours_stage 60 "fmbench unet (bf16)"; then
  FM_PRECISION=bf16 bounded 150 "$build_dir/bin/fmbench" unet --batch "$batch" --csv "$logs/bench_unet_bf16.csv" \
    >"$logs/bench_unet_bf16.log" 2>&1
  echo "fmbench unet (bf16): rc $? ($(elapsed))"
fi
save_logs
# Rows "custom <ms/step> <images/s> ..." and "library ..." of fmbench unet's table.
engine_row() { [[ -f $2 ]] && awk -v k="$1" '$1 == k && $2 ~ /^[0-9.]+$/ { print $2, $3; exit }' "$2"; }
read -r custom_ms custom_ips <<<"$(engine_row custom "$logs/bench_unet.log")"
read -r library_ms library_ips <<<"$(engine_row library "$logs/bench_unet.log")"
read -r tf32_ms tf32_ips <<<"$(engine_row custom "$logs/bench_unet_tf32.log")"
read -r bf16_ms bf16_ips <<<"$(engine_row custom "$logs/bench_unet_bf16.log")"
# bfloat16 activations (model.activations = "bfloat16"): the "bf16-act" row, which only the bf16 run has.
read -r bf16act_ms bf16act_ips <<<"$(engine_row bf16-act "$logs/bench_unet_bf16.log")"

# 3b. The same step inside fmtrain (the full config's data, clipping, EMA, logging every 20 steps;
# no sample grids or checkpoints inside the timed loop): what the loop around the step costs.
# Issue 14's target: fmtrain at >= 95% of fmbench's step rate.
fmtrain_ips=""
if ! ours_stage 45 "fmtrain (400 steps)"; then
  :
elif [[ -d /usr/share/datasets/fashion-mnist || -d .deps/root/usr/share/datasets/fashion-mnist ]]; then
  data_dir=/usr/share/datasets/fashion-mnist
  [[ -d $data_dir ]] || data_dir="$PWD/.deps/root/usr/share/datasets/fashion-mnist"
  rm -rf "$build_dir/bench_fmtrain"
  bounded 120 "$build_dir/bin/fmtrain" configs/fashion_mnist.json --out "$build_dir/bench_fmtrain" --quiet \
    --set device=cuda --set data.dir="$data_dir" --set train.batch_size="$batch" --set train.steps=400 --set train.warmup_steps=100 \
    --set train.checkpoint_every=400 --set train.sample_every=0 --set sample.n=16 --set sample.steps=2 \
    >"$logs/bench_fmtrain.log" 2>&1
  echo "fmtrain (400 steps): rc $? ($(elapsed))"
  # images/s over the run = batch * steps / elapsed_s of the last metrics line with both.
  fmtrain_ips=$(python3 -c "import json,sys; r=[x for x in map(json.loads, open(sys.argv[1])) if 'elapsed_s' in x and 'step' in x][-1]; print(round(r['step']*int(sys.argv[2])/r['elapsed_s']))" \
    "$build_dir/bench_fmtrain/metrics.jsonl" "$batch" 2>/dev/null)
else
  echo "fmtrain: no Fashion-MNIST here (carry .deps); row skipped"
fi
save_logs

# 4. PyTorch, one process per variant (a variant's switches cannot leak into the next).
pytorch_csv="$logs/bench_pytorch.csv"
rm -f "$pytorch_csv"
pytorch_run() {  # label, time limit, extra flags...
  local label="$1" limit="$2"; shift 2
  # An eager run takes about 30 s (import, warm-up, timing); a compiled one its whole limit.
  local need=45 compiled=0; [[ " $* " == *" --compile "* ]] && need=$limit compiled=1
  [[ $only_compile == 1 && $compiled == 0 ]] && return 0
  fits "$need" "pytorch $label" || return 0
  bounded "$limit" python3 bench/unet_pytorch.py --batch "$batch" --csv "$pytorch_csv" "$@" \
    >"$logs/bench_pytorch_$label.log" 2>&1
  local rc=$?
  [[ $rc -eq 0 ]] || echo "pytorch $label: rc $rc (124 = over its time limit; log: $logs/bench_pytorch_$label.log)"
  echo "pytorch $label: done ($(elapsed))"
  save_logs
}
if python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
  pytorch_run fp32 120 --precision fp32
  pytorch_run fp32_benchmark 120 --precision fp32 --cudnn-benchmark
  pytorch_run defaults 120 --precision defaults
  pytorch_run tf32 120 --precision tf32 --cudnn-benchmark
  pytorch_run bf16 120 --precision bf16 --cudnn-benchmark
  if [[ "${FM_SKIP_COMPILE:-0}" != 1 ]]; then
    pytorch_run compile_tf32 "$compile_limit" --precision tf32 --cudnn-benchmark --compile "$compile_mode"
    pytorch_run compile_bf16 "$compile_limit" --precision bf16 --cudnn-benchmark --compile "$compile_mode"
  fi
else
  echo "pytorch: not installed or no CUDA device; no baseline rows"
fi

# 5. The table. Ours = the faster of our two kernel sets (both FP32).
best_ips=$(awk -v a="${custom_ips:-0}" -v b="${library_ips:-0}" 'BEGIN { print (a > b ? a : b) }')
echo
echo "| variant (batch $batch, ${gpu_name:-no GPU}) | ms/step | images/s | ours (FP32, $best_ips images/s) / variant |"
echo "|---|---|---|---|"
echo "| ours, custom kernels, FP32 | ${custom_ms:-–} | ${custom_ips:-–} | |"
echo "| ours, cuDNN/cuBLAS, FP32 | ${library_ms:-–} | ${library_ips:-–} | |"
echo "| ours, custom kernels, TF32 (WMMA) | ${tf32_ms:-–} | ${tf32_ips:-–} | |"
echo "| ours, custom kernels, bf16 (WMMA) | ${bf16_ms:-–} | ${bf16_ips:-–} | |"
echo "| ours, custom kernels, bf16 activations (WMMA) | ${bf16act_ms:-–} | ${bf16act_ips:-–} | |"
echo "| ours, fmtrain full loop (custom, FP32, 400 steps) | | ${fmtrain_ips:-–} | fmtrain / fmbench custom: $(awk -v a="${fmtrain_ips:-0}" -v b="${custom_ips:-0}" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else print "–" }') |"
if [[ -f "$pytorch_csv" ]]; then
  awk -F, -v ours="$best_ips" '{
      name = "PyTorch " $2 (($3 != "none") ? ", torch.compile " $3 : ", eager") (($4 == 1) ? ", cudnn.benchmark" : "")
      ratio = (ours > 0 && $7 > 0) ? sprintf("%.2fx", ours / $7) : "–"
      printf "| %s | %.2f | %.0f | %s |\n", name, $6, $7, ratio
    }' "$pytorch_csv"
fi
if [[ -n "${OUT:-}" ]]; then
  save_logs
  logs="\$OUT/gpu_bench_logs.tar.gz"
fi
echo "gpu_bench: tests $tests_status; total $(elapsed); logs in $logs"
