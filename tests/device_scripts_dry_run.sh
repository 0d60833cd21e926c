#!/usr/bin/env bash
# tests/device_scripts_dry_run.sh — the lent-GPU scripts checked where no GPU is: every tools/*.sh
# parses (bash -n), and tools/gpu_bench.sh runs its stages against stand-ins in a scratch tree (cmake,
# nvidia-smi, the test binaries, fmbench, fmtrain and PyTorch's script replaced by small stubs), so a
# mistake in its logic shows here instead of costing a device call of a 15-minute lease.
#
#   bash tests/device_scripts_dry_run.sh REPO_ROOT PYTHON3
#
# Checks: (a) a whole run prints the table from the stubs' numbers (each precision's row from its own
# run), with the ratio column, reports a hung test binary as over its time limit, skips the compiled
# rows that do not fit the deadline and leaves the logs and CSVs in $OUT; (b) a short deadline skips
# the stages that do not fit, each with a line saying so, and still ends with the table inside the
# deadline; (c) a run killed part-way has already left the logs of its finished stages in $OUT;
# (d) a run that would pass the deadline is cut there; (e) the test stage starts no binary in its
# last 30 s and lists those as not run; (f) FM_ONLY_COMPILE=1 runs the compiled rows alone.
set -uo pipefail
repo="$(cd "${1:?usage: device_scripts_dry_run.sh REPO_ROOT PYTHON3}" && pwd)"
real_python="${2:?usage: device_scripts_dry_run.sh REPO_ROOT PYTHON3}"
scratch="$(mktemp -d "${TMPDIR:-/tmp}/fm_device_scripts.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
failures=0
fail() { echo "FAILED: $*"; failures=$((failures + 1)); }
expect() {  # expect REGEX: the current scenario's output has a line matching REGEX
  grep -Eq -- "$1" "$log" || fail "$scenario: no line matching /$1/ in the output (below)"
}

# Every device and helper script at least parses.
for script in "$repo"/tools/*.sh; do
  bash -n "$script" || fail "bash -n $(basename "$script")"
done

# ---- the scratch tree: the script itself, a test source with GPU cases, the config, stubs
tree="$scratch/tree"
mkdir -p "$tree"/{tools,tests,bench,configs,build-gpu/bin} "$scratch/shim"
cp "$repo/tools/gpu_bench.sh" "$tree/tools/"
cp "$repo/configs/fashion_mnist.json" "$tree/configs/"
: >"$tree/bench/unet_pytorch.py"
for name in test_quick_a test_quick_b test_quick_c test_quick_d test_quick_e test_hangs; do
  echo 'TEST_CASE("x") { FM_REQUIRE_GPU(); }' >"$tree/tests/$name.cpp"
done
mkdir -p "$tree/.deps/root/usr/share/datasets/fashion-mnist"  # fmtrain's data check looks for it

printf '#!/bin/sh\nexit 0\n' >"$scratch/shim/cmake"
printf '#!/bin/sh\necho "Stub GPU"\n' >"$scratch/shim/nvidia-smi"
# PyTorch: "import torch" succeeds; bench/unet_pytorch.py sleeps STUB_EAGER_S (eager) or a long time
# (--compile) and appends its CSV row; everything else goes to the real interpreter.
cat >"$scratch/shim/python3" <<EOF
#!/usr/bin/env bash
if [[ "\$*" == *"import torch"* ]]; then exit 0; fi
if [[ "\${1:-}" == bench/unet_pytorch.py ]]; then
  shift; precision=fp32 compile=none benchmark=0 csv=
  while [[ \$# -gt 0 ]]; do
    case \$1 in
      --precision) precision=\$2; shift ;; --compile) compile=\$2; shift ;; --csv) csv=\$2; shift ;;
      --cudnn-benchmark) benchmark=1 ;;
    esac
    shift
  done
  [[ \$compile != none ]] && sleep 600
  sleep "\${STUB_EAGER_S:-0}"
  echo "cuda,\$precision,\$compile,\$benchmark,256,20.00,12800" >>"\$csv"
  exit 0
fi
exec "$real_python" "\$@"
EOF
bin="$tree/build-gpu/bin"
for name in test_quick_a test_quick_b test_quick_c test_quick_d test_quick_e; do
  printf '#!/bin/sh\nsleep "${STUB_TEST_S:-0}"\n' >"$bin/$name"
done
printf '#!/bin/sh\nsleep "${STUB_HANG_S:-600}"\n' >"$bin/test_hangs"
# fmbench: each precision (FM_PRECISION) its own numbers, so a row read from the wrong run shows.
cat >"$bin/fmbench" <<'EOF'
#!/usr/bin/env bash
sleep "${STUB_FMBENCH_S:-0}"
if [[ $1 == unet ]]; then
  case "${FM_PRECISION:-fp32}" in
    fp32) echo "custom 31.00 8250"; echo "library 46.40 5519" ;;
    tf32) echo "custom 20.00 12800"; echo "library 25.00 10240" ;;
    bf16) echo "custom 12.00 21333"; echo "library 24.00 10667"; echo "bf16-act 15.00 17000" ;;
  esac
  while [[ $# -gt 0 ]]; do [[ $1 == --csv ]] && echo "variant,ms,images_per_s" >"$2"; shift; done
fi
exit 0
EOF
cat >"$bin/fmtrain" <<'EOF'
#!/usr/bin/env bash
out=; while [[ $# -gt 0 ]]; do [[ $1 == --out ]] && out=$2; shift; done
mkdir -p "$out" && echo '{"step": 400, "elapsed_s": 13.0}' >"$out/metrics.jsonl"
EOF
chmod +x "$scratch/shim"/* "$bin"/*

# in_session LIMIT LOG [VAR=VALUE...]: the script in the scratch tree under a session of its own, ended
# by SIGKILL after LIMIT seconds (as the device tool ends a call) if it is still running, and then
# every process left in that session is ended too (the script's own `timeout`s put their runs in
# process groups of their own, which a kill of the script does not reach).
in_session() {
  local limit="$1" log="$2"; shift 2
  env PATH="$scratch/shim:$PATH" "$@" setsid --wait bash -c \
    'echo $$ >"$3.sid"; timeout -s KILL "$1" bash "$2" >"$3" 2>&1; true' _ "$limit" "$tree/tools/gpu_bench.sh" "$log" \
    2>/dev/null  # the shell's own "Killed" line is not a finding
  kill_session "$(cat "$log.sid")"
  return 0
}
# Every process of session SID, read from /proc (no procps needed): field 6 of /proc/PID/stat,
# counted after the command name's closing parenthesis.
kill_session() {
  local stat line fields
  for stat in /proc/[0-9]*/stat; do
    read -r line <"$stat" 2>/dev/null || continue
    read -r -a fields <<<"${line##*) }"
    [[ ${fields[3]:-} == "$1" ]] && kill -KILL "${stat//[^0-9]/}" 2>/dev/null
  done
  return 0
}
# scenario NAME KILL_AFTER [VAR=VALUE...]: the script with these settings, killed after KILL_AFTER
# seconds if still running (bounded, so that a script that ignores its deadline fails the checks
# instead of hanging the test); its output is then $log, its $OUT is $out, and the checks that follow
# are reported under NAME.
scenario() {
  scenario="$1"; local kill_after="$2"; shift 2
  log="$scratch/$scenario.log" out="$scratch/out_$scenario" before=$failures started_at=$(date +%s)
  rm -rf "$out" && mkdir -p "$out"
  in_session "$kill_after" "$log" OUT="$out" "$@"
}
# within SECONDS: the current scenario ended inside SECONDS of its start.
within() {
  local took=$(( $(date +%s) - started_at ))
  (( took <= $1 )) || fail "$scenario: took $took s, more than $1 s"
}
# Shows the current scenario's output when one of its checks failed.
show_if_failed() { [[ $failures -eq $before ]] || cat "$log"; }
# (Not `tar | grep -q`: under pipefail, grep leaving early can fail the pipeline through SIGPIPE.)
tar_has() { local names; names=$(tar tzf "$1" 2>/dev/null) && grep -q -- "$2" <<<"$names"; }

# (a) A whole run with room for everything but the compiled rows.
scenario whole 60 FM_DEADLINE_S=100 FM_BENCH_RESERVE_S=60 FM_TEST_LIMIT_S=3
expect '^tests: test_hangs FAILED \(rc 124'
expect '^tests: 5 of 6 binaries passed \('
expect '^\| ours, custom kernels, FP32 \| 31\.00 \| 8250 \|'
expect '^\| ours, cuDNN/cuBLAS, FP32 \| 46\.40 \| 5519 \|'
expect '^\| ours, custom kernels, TF32 \(WMMA\) \| 20\.00 \| 12800 \|'
expect '^\| ours, custom kernels, bf16 \(WMMA\) \| 12\.00 \| 21333 \|'
expect '^\| ours, custom kernels, bf16 activations \(WMMA\) \| 15\.00 \| 17000 \|'
expect 'fmtrain / fmbench custom: 0\.95'
expect '^\| PyTorch fp32, eager \| 20\.00 \| 12800 \| 0\.64x \|'
expect '^\| PyTorch bf16, eager, cudnn\.benchmark \| 20\.00 \| 12800 \| 0\.64x \|'
expect '^pytorch compile_tf32: skipped \([0-9]+ s left of FM_DEADLINE_S=100'
[[ -f "$out/gpu_bench_logs.tar.gz" ]] || fail "whole: no gpu_bench_logs.tar.gz in \$OUT"
tar_has "$out/gpu_bench_logs.tar.gz" bench_unet_bf16.log || fail "whole: the archive lacks bench_unet_bf16.log"
for csv in bench_unet.csv bench_pytorch.csv; do
  [[ -f "$out/$csv" ]] || fail "whole: $csv not copied to \$OUT"
done
within 59  # the stubs need about 5 s
show_if_failed

# (b) A deadline too short for most stages: they say they are skipped; the table still comes.
scenario short 60 FM_DEADLINE_S=30 FM_SKIP_TESTS=1 STUB_FMBENCH_S=2
expect '^fmbench step: rc 0'
expect '^fmbench unet: skipped \([0-9]+ s left of FM_DEADLINE_S=30, needs about 60 s\)'
expect '^pytorch fp32: skipped'
expect '^\| ours, custom kernels, FP32 \| – \| – \|'
expect '^gpu_bench: tests skipped; total'
within 32
show_if_failed

# (c) Killed part-way (as the device tool ends a call at its limit): the finished stages' logs are in $OUT.
scenario killed 8 FM_SKIP_TESTS=1 STUB_EAGER_S=1
tar_has "$out/gpu_bench_logs.tar.gz" bench_unet.log || fail "killed: \$OUT has no archive with bench_unet.log"
tar_has "$out/gpu_bench_logs.tar.gz" bench_pytorch_fp32.log || fail "killed: the archive lacks the finished PyTorch row's log"
[[ -f "$out/bench_pytorch.csv" ]] || fail "killed: bench_pytorch.csv not in \$OUT"
show_if_failed

# (d) A stage that would outlast the deadline is cut at it (fmbench step fits at the start, then hangs).
scenario cut 60 FM_DEADLINE_S=21 FM_SKIP_TESTS=1 STUB_FMBENCH_S=100
expect '^fmbench step: rc 124'
expect '^fmbench unet: skipped'
expect '^gpu_bench: tests skipped; total'
within 24
show_if_failed

# (e) The test stage: 6 binaries of 33 s, 4 at a time, in a budget of the 62 s left (the reserve for
# the timings cannot be kept, and the tests take what is left up to 120 s): the last two would start
# with under 30 s left, so they are listed as not run; the four that ran passed.
scenario budget 60 FM_DEADLINE_S=62 FM_BENCH_RESERVE_S=300 FM_TEST_LIMIT_S=60 STUB_TEST_S=33 STUB_HANG_S=33
expect '^tests: test_quick_[a-e] not run \(deadline\)'
expect '^tests: 4 of 4 binaries passed, 2 not run \('
show_if_failed

# (f) FM_ONLY_COMPILE=1: no tests, none of our timings, no eager rows; the compiled rows, each cut at
# its limit (the stub compiles forever).
scenario compiled 60 FM_ONLY_COMPILE=1 FM_COMPILE_LIMIT_S=2
expect '^pytorch compile_tf32: rc 124'
expect '^pytorch compile_bf16: rc 124'
grep -Eq '^(tests|fmbench|fmtrain|pytorch (fp32|defaults|tf32|bf16))[ :]' "$log" &&
  fail "compiled: a stage other than the compiled rows ran or was reported"
show_if_failed

if [[ $failures -ne 0 ]]; then
  echo "device_scripts_dry_run: $failures check(s) failed"
  exit 1
fi
echo "device_scripts_dry_run: all checks passed (tools/*.sh parse; gpu_bench.sh whole, short deadline, killed, cut, test budget, compiled rows only)"
