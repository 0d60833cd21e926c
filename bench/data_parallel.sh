#!/usr/bin/env bash
# bench/data_parallel.sh — data-parallel training on the CPU: 2 ranks against 1 rank on the same cores.
#
# For moons (configs/moons.json) and the small U-Net (configs/fashion_mnist_cpu.json) it trains the
# same global batch twice, alternating, --repeats times:
#   1 rank  × T threads   (fmtrain, OMP_NUM_THREADS=T)
#   2 ranks × T/2 threads (mpirun -np 2 fmtrain, OMP_NUM_THREADS=T/2)
# so both use the same T cores (default 2), and prints per config the median training steps/s of
# each, their ratio (2 ranks / 1 rank: above 1 means the split paid), and the communication share:
# allreduce_wait_ms_per_step from rank 0's metrics.jsonl (the host's wait for the gradient sums after
# backward, written by tools/train_run.cpp on data-parallel runs) against the 2-rank step time.
#
# Steps/s come from metrics.jsonl (steps and elapsed_s between the first and the last log line), so
# start-up, data loading, the first log interval and the final sampling are not in them. The wait is
# the median over the log lines after the first. It includes time rank 0 waits for a slower rank
# (load imbalance, a neighbour's job), not only the transfer; on a shared machine read it as an upper
# bound. The ratio of the final logged losses (2 ranks against 1) is printed too: equal to about
# 1e-7 relative, not bitwise (docs/11_training_on_many_gpus.md §11.5 says why).
#
#   bash bench/data_parallel.sh [--fmtrain build/bin/fmtrain] [--repeats 3] [--threads 2]
#        [--moons-steps 1500] [--unet-steps 40] [--only moons|unet] [--keep]
#
# Needs an MPI build (cmake found libopenmpi-dev: fmtrain's "data parallel over 2 ranks" line) and
# mpirun on PATH. Extra mpirun flags: MPIRUN_FLAGS (default "--oversubscribe --bind-to none": neither
# variant is pinned, so the OS places both alike). As root, Open MPI's two OMPI_ALLOW_RUN_AS_ROOT
# variables are set. Timings on a shared machine move by tens of per cent: compare only the ratio of
# one invocation, and say how loaded the machine was (the script prints the load average).
set -euo pipefail

fmtrain=build/bin/fmtrain
repeats=3
threads=2
moons_steps=1500
unet_steps=40
only=""
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --fmtrain) fmtrain="$2"; shift 2 ;;
    --repeats) repeats="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --moons-steps) moons_steps="$2"; shift 2 ;;
    --unet-steps) unet_steps="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "data_parallel.sh: unknown argument '$1'; expected --fmtrain, --repeats, --threads, --moons-steps, --unet-steps, --only, --keep or --help" >&2; exit 2 ;;
  esac
done

[ -x "$fmtrain" ] || { echo "data_parallel.sh: no fmtrain at '$fmtrain'; expected a built binary (ninja -C build fmtrain) or --fmtrain PATH" >&2; exit 2; }
command -v mpirun >/dev/null || { echo "data_parallel.sh: mpirun not found; expected Open MPI (apt-get install openmpi-bin libopenmpi-dev, then reconfigure)" >&2; exit 2; }
[ "$threads" -ge 2 ] && [ $((threads % 2)) -eq 0 ] || { echo "data_parallel.sh: --threads $threads; expected an even number >= 2 (it is split over 2 ranks)" >&2; exit 2; }
for n in "$repeats" "$moons_steps" "$unet_steps"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "data_parallel.sh: '$n' is not a positive integer" >&2; exit 2; }
done
[ "$moons_steps" -ge 20 ] && [ "$unet_steps" -ge 10 ] || { echo "data_parallel.sh: expected --moons-steps >= 20 and --unet-steps >= 10 (two log lines at least)" >&2; exit 2; }
case "$only" in ""|moons|unet) ;; *) echo "data_parallel.sh: --only '$only'; expected moons or unet" >&2; exit 2 ;; esac

if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
read -r -a mpirun_flags <<< "${MPIRUN_FLAGS:---oversubscribe --bind-to none}"
work=$(mktemp -d /tmp/fm_data_parallel.XXXXXX)
[ "$keep" = 1 ] || trap 'rm -rf "$work"' EXIT

echo "# bench/data_parallel.sh $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# 1 rank x $threads threads against 2 ranks x $((threads / 2)) threads, $repeats alternating repeats; mpirun ${mpirun_flags[*]}"

# One training run; its metrics.jsonl stays in $work/NAME.
train() {  # name ranks config steps log_every extra-set...
  local name=$1 ranks=$2 config=$3 steps=$4 log_every=$5
  shift 5
  local sets=(--set device='"cpu"' --set train.steps="$steps" --set train.log_every="$log_every"
              --set train.warmup_steps=5 --set train.sample_every=0 --set train.checkpoint_every=1000000000
              --set train.keep_checkpoints=false "$@")
  rm -rf "$work/$name"
  if [ "$ranks" = 1 ]; then
    OMP_NUM_THREADS=$threads "$fmtrain" "$config" --out "$work/$name" --quiet "${sets[@]}" > "$work/$name.log" 2>&1
  else
    OMP_NUM_THREADS=$((threads / 2)) mpirun "${mpirun_flags[@]}" -np 2 "$fmtrain" "$config" --out "$work/$name" \
      --quiet "${sets[@]}" > "$work/$name.log" 2>&1
  fi || { echo "data_parallel.sh: run $name failed; its output:" >&2; tail -20 "$work/$name.log" >&2; exit 1; }
}

bench_config() {  # label config steps log_every extra-set...
  local label=$1 config=$2 steps=$3 log_every=$4
  shift 4
  for r in $(seq 1 "$repeats"); do
    train "${label}_1rank_$r" 1 "$config" "$steps" "$log_every" "$@"
    train "${label}_2ranks_$r" 2 "$config" "$steps" "$log_every" "$@"
  done
  python3 - "$work" "$label" "$repeats" "$threads" <<'EOF'
import json, statistics, sys
work, label, repeats, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

def log_lines(run):
    with open(f"{work}/{run}/metrics.jsonl") as f:
        return [l for l in map(json.loads, f) if "loss" in l and "step" in l]

def steps_per_second(lines):
    first, last = lines[0], lines[-1]
    return (last["step"] - first["step"]) / (last["elapsed_s"] - first["elapsed_s"])

one = [log_lines(f"{label}_1rank_{r}") for r in range(1, repeats + 1)]
two = [log_lines(f"{label}_2ranks_{r}") for r in range(1, repeats + 1)]
sps1 = [steps_per_second(l) for l in one]
sps2 = [steps_per_second(l) for l in two]
waits = [statistics.median(x["allreduce_wait_ms_per_step"] for x in l[1:]) for l in two]
m1, m2, w = statistics.median(sps1), statistics.median(sps2), statistics.median(waits)
step_ms = 1e3 / m2
loss_ratio = max(abs(b[-1]["loss"] / a[-1]["loss"] - 1) for a, b in zip(one, two))
fmt = lambda xs: " ".join(f"{x:.1f}" if x >= 10 else f"{x:.2f}" for x in xs)
print(f"{label}: steps {one[0][-1]['step']}, log lines {len(one[0])}")
print(f"  1 rank  x {threads} threads: {m1:8.2f} steps/s (median; runs {fmt(sps1)})")
print(f"  2 ranks x {threads // 2} threads: {m2:8.2f} steps/s (median; runs {fmt(sps2)})")
print(f"  ratio 2 ranks / 1 rank: {m2 / m1:.2f}")
print(f"  allreduce_wait_ms_per_step (rank 0): {w:.3f} ms of a {step_ms:.2f} ms step = {100 * w / step_ms:.1f}% "
      f"(median; runs {' '.join(f'{x:.3f}' for x in waits)})")
print(f"  final logged loss, 2 ranks against 1: largest relative difference {loss_ratio:.1e}")
EOF
}

if [ -z "$only" ] || [ "$only" = moons ]; then
  bench_config moons configs/moons.json "$moons_steps" $(( moons_steps >= 1000 ? 100 : moons_steps / 5 ))
fi
if [ -z "$only" ] || [ "$only" = unet ]; then
  # data.limit: loading 60,000 images would take longer than a few dozen steps; the step is the same.
  bench_config unet configs/fashion_mnist_cpu.json "$unet_steps" $(( unet_steps >= 40 ? 5 : unet_steps / 5 )) \
    --set data.limit=2000 --set sample.n=16 --set sample.steps=2
fi
[ "$keep" = 0 ] || echo "# runs kept in $work"
