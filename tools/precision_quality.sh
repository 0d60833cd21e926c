#!/usr/bin/env bash
# tools/precision_quality.sh — does lower precision cost sample quality? Trains the same config with
# several seeds per numeric variant and prints the Frechet distance (fmeval, classifier features) of
# each run, with the float32 runs' seed-to-seed spread to judge the others against (issue 14: "FD of
# bf16 and tf32 runs within the seed-to-seed spread of fp32").
#
#   bash tools/precision_quality.sh CONFIG BIN_DIR OUT_DIR
#
# Variants (VARIANTS, space-separated; default "fp32 bf16-act"):
#   fp32     the config as it is (precision fp32, float32 activations)
#   tf32     precision = "tf32"   (CUDA only: CPU runs ignore the precision key)
#   bf16     precision = "bf16"   (CUDA only, likewise)
#   bf16-act model.activations = "bfloat16" (both devices; on the CPU the bfloat16 layers widen, compute
#            in float and round once, so it measures the rounding of the activations alone)
# Environment: SEEDS (default "0 1 2"), STEPS (overrides train.steps), FD_N (samples for the distance,
# default 1000), SET (more --set KEY=VALUE arguments for every run, space-separated). The Fashion-MNIST
# classifier is trained once into OUT_DIR/classifier.safetensors (1 epoch) unless it is there, and a
# run that finished before (its summary.json is there) is not trained again.
# Each run's fmtrain and fmeval logs stay in OUT_DIR/<variant>_s<seed>/; the table goes to stdout and
# OUT_DIR/table.md.
set -euo pipefail
if [[ $# -ne 3 ]]; then
  echo "usage: bash tools/precision_quality.sh CONFIG BIN_DIR OUT_DIR" >&2
  exit 2
fi
config=$1 bin=$2 out=$3
[[ -f "$config" ]] || { echo "precision_quality: config $config not found" >&2; exit 2; }
for tool in fmtrain fmeval; do
  [[ -x "$bin/$tool" ]] || { echo "precision_quality: $bin/$tool not found (build it first)" >&2; exit 2; }
done
seeds=${SEEDS:-0 1 2}
variants=${VARIANTS:-fp32 bf16-act}
fd_n=${FD_N:-1000}
mkdir -p "$out"
classifier="$out/classifier.safetensors"
if [[ ! -f "$classifier" ]]; then
  echo "precision_quality: training the classifier ($classifier)" >&2
  "$bin/fmeval" train-classifier --out "$classifier" --epochs 1 >"$out/classifier.log" 2>&1
fi

variant_sets() {
  case "$1" in
    fp32) ;;
    tf32) echo "--set precision=tf32" ;;
    bf16) echo "--set precision=bf16" ;;
    bf16-act) echo "--set model.activations=bfloat16" ;;
    *) echo "precision_quality: unknown variant '$1' (expected fp32, tf32, bf16 or bf16-act)" >&2; return 1 ;;
  esac
}
for variant in $variants; do variant_sets "$variant" >/dev/null; done

declare -A fd
for seed in $seeds; do
  for variant in $variants; do  # alternating variants, so a slower stretch of a shared machine hits all
    run="$out/${variant}_s$seed"
    sets=(--set "train.seed=$seed")
    [[ -n "${STEPS:-}" ]] && sets+=(--set "train.steps=$STEPS")
    for s in ${SET:-}; do sets+=(--set "$s"); done
    # summary.json is written when a run finishes (checkpoints come every checkpoint_every steps)
    if [[ ! -f "$run/summary.json" ]]; then
      rm -rf "$run"
      echo "precision_quality: training $variant, seed $seed" >&2
      start=$(date +%s)
      # variant_sets prints "--set KEY=VALUE" words, meant to split
      "$bin/fmtrain" "$config" --out "$run" "${sets[@]}" $(variant_sets "$variant") --quiet >"$run.train.log" 2>&1
      echo "  $(( $(date +%s) - start )) s" >&2
      mv "$run.train.log" "$run/train.log"
    fi
    "$bin/fmeval" --checkpoint "$run/checkpoint.safetensors" --classifier "$classifier" --n "$fd_n" --seed 0 \
      >"$run/fmeval.log" 2>&1
    fd[$variant,$seed]=$(awk '/^fd [0-9]/ {print $2; exit}' "$run/fmeval.log")
    echo "  $variant seed $seed: FD ${fd[$variant,$seed]}" >&2
  done
done

# mean and sample standard deviation of a list of numbers
stats() { printf '%s\n' "$@" | awk '{s += $1; q += $1 * $1; n++} END {m = s / n; v = n > 1 ? (q - n * m * m) / (n - 1) : 0; if (v < 0) v = 0; printf "%.3f %.3f", m, sqrt(v)}'; }
{
  echo "| variant | FD per seed ($seeds) | mean ± std |"
  echo "|---|---|---|"
  for variant in $variants; do
    values=()
    for seed in $seeds; do values+=("${fd[$variant,$seed]}"); done
    read -r mean std <<<"$(stats "${values[@]}")"
    echo "| $variant | ${values[*]} | $mean ± $std |"
  done
  echo
  echo "config $config, $(echo "$seeds" | wc -w) seeds, FD of $fd_n samples against $fd_n t10k images (fmeval, seed 0)${STEPS:+, train.steps=$STEPS}"
} | tee "$out/table.md"
