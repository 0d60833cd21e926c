#!/usr/bin/env bash
# tools/straight_pipeline_images.sh — the straight-paths pipeline on Fashion-MNIST, end to end:
#
#   1-RF      flow matching as usual (the teacher)
#   2-RF      fmreflow: (x0, x1) pairs from 1-RF (RK4 x 20); a student from 1-RF trained on them
#   3-RF      the same again from 2-RF
#   2-RF+D1   2-RF distilled to one Euler step (t = 0 only) on 2-RF's own pairs
#   OT-CFM    1-RF's recipe with minibatch OT coupling (train.coupling = minibatch_ot)
#
# then `fmeval straight` on all of them: the Frechet distance to t10k images (classifier features)
# after Euler with 1, 2, 4, 8, 16, 100 steps and dopri5, the straightness S, a CSV, a plot and
# pictures of the paths, in OUT.
#
#   bash tools/straight_pipeline_images.sh [cpu|gpu] [BIN_DIR]
#
# cpu: the CPU U-Net (configs/fashion_mnist_cpu*.json), a 4,000-step teacher, 10,000 pairs per
#      reflow, evaluation on 1,000 images; about 2 hours on 2 cores.
# gpu: the seed U-Net (configs/fashion_mnist*.json), 200,000 pairs, evaluation on 2,000 images.
#
# BIN_DIR holds fmtrain, fmreflow, fmeval (default: build/bin). Every stage keeps its output in OUT
# (default runs/straight_fashion_mnist_<profile>), so a second call resumes where the first stopped
# (tools/pipeline_stages.sh; fmreflow resumes a half-written pairs file itself); delete OUT to start over. Override with
# PAIRS, TEACHER_STEPS, N_EVAL, TOLERANCE (dopri5's rtol = atol), CLASSIFIER (the classifier file;
# default OUT/classifier.safetensors; trained at that path when missing).
set -euo pipefail
profile=${1:-cpu}
bin=${2:-build/bin}
case "$profile" in
  cpu) suffix=_cpu; default_pairs=10000; default_teacher_steps=4000; default_n=1000; device=cpu ;;
  gpu) suffix=; default_pairs=200000; default_teacher_steps=4680; default_n=2000; device=auto ;;
  *) echo "straight_pipeline_images.sh: profile \"$profile\" is not cpu or gpu" >&2; exit 2 ;;
esac
out=${OUT:-runs/straight_fashion_mnist_$profile}
pairs=${PAIRS:-$default_pairs}
teacher_steps=${TEACHER_STEPS:-$default_teacher_steps}
n_eval=${N_EVAL:-$default_n}
tolerance=${TOLERANCE:-1e-3}
classifier=${CLASSIFIER:-$out/classifier.safetensors}
for tool in fmtrain fmreflow fmeval; do
  [[ -x "$bin/$tool" ]] || { echo "straight_pipeline_images.sh: $bin/$tool not found (build first, or pass BIN_DIR)" >&2; exit 2; }
done
mkdir -p "$out"
start=$SECONDS
train_flags=(--set device="\"$device\"")
# shellcheck source=tools/pipeline_stages.sh
source "$(dirname "$0")/pipeline_stages.sh"

pairs_from() {  # pairs_from TEACHER_RUN FILE STUDENT_RUN...: skipped once every student is trained
  local teacher=$1 file=$2 student pending=0
  shift 2
  for student in "$@"; do [[ -f "$out/$student/summary.json" ]] || pending=1; done
  if (( ! pending )); then
    echo "== pairs from $teacher: not needed (its students are trained)"
    return
  fi
  stage "$pairs pairs from $teacher"
  "$bin/fmreflow" --teacher "$out/$teacher/checkpoint.safetensors" --out "$out/$file" --count "$pairs" --device "$device"
}

train 1rf "configs/fashion_mnist$suffix.json" --set train.steps="$teacher_steps"
if [[ ! -f "$classifier" ]]; then
  stage "classifier"
  "$bin/fmeval" train-classifier --out "$classifier" --device "$device"
fi
pairs_from 1rf pairs_1rf.safetensors 2rf
train 2rf "configs/fashion_mnist${suffix}_reflow.json" --set data.pairs="\"$out/pairs_1rf.safetensors\"" \
  --set train.init_from="\"$out/1rf/checkpoint.safetensors\""
pairs_from 2rf pairs_2rf.safetensors 2rf_distill1 3rf
train 2rf_distill1 "configs/fashion_mnist${suffix}_distill.json" --set data.pairs="\"$out/pairs_2rf.safetensors\"" \
  --set train.init_from="\"$out/2rf/checkpoint.safetensors\""
train 3rf "configs/fashion_mnist${suffix}_reflow.json" --set data.pairs="\"$out/pairs_2rf.safetensors\"" \
  --set train.init_from="\"$out/2rf/checkpoint.safetensors\""
train ot "configs/fashion_mnist$suffix.json" --set train.steps="$teacher_steps" --set train.coupling='"minibatch_ot"'

stage "evaluation"
runs=(1rf ot 2rf 3rf 2rf_distill1)
checkpoints=()
for r in "${runs[@]}"; do checkpoints+=("$out/$r/checkpoint.safetensors"); done
"$bin/fmeval" straight "${checkpoints[@]}" --labels "$(IFS=,; echo "${runs[*]}")" --device "$device" \
  --classifier "$classifier" --n "$n_eval" --tolerance "$tolerance" \
  --csv "$out/quality_vs_nfe.csv" --png "$out/quality_vs_nfe.png" --trajectories "$out/paths" | tee "$out/report.txt"
echo "pipeline for Fashion-MNIST ($profile): $((SECONDS - start)) s; report in $out/report.txt"
