#!/usr/bin/env bash
# tools/straight_pipeline.sh — the straight-paths pipeline on a 2-D data set, end to end on the CPU:
#
#   1-RF      flow matching as usual (configs/moons.json)
#   OT-CFM    the same with minibatch OT coupling (configs/moons_ot.json)
#   VP        the same model on the variance-preserving path (seed 004's design-space question)
#   2-RF      fmreflow: 100k (x0, x1) pairs from 1-RF (RK4 x 20); a student from 1-RF trained on them
#   3-RF      the same again from 2-RF
#   2-RF+Dk   2-RF distilled to k = 1, 2, 4 Euler steps (t on {0, 1/k, ...} only, on 2-RF's own pairs)
#
# then `fmeval straight` on all of them: sliced W2 against Euler NFE (1 … 100) and dopri5, the
# straightness S, a CSV, a plot and trajectory pictures, in OUT (default runs/straight_<data>).
#
#   bash tools/straight_pipeline.sh [moons|spiral|8gaussians|checkerboard] [BIN_DIR]
#   SOURCE=8gaussians bash tools/straight_pipeline.sh moons    (a 2-D data set as the source, not N(0, I))
#
# BIN_DIR holds fmtrain, fmreflow, fmeval (default: build/bin). Every run keeps its directory, so a
# second call reuses what is finished and resumes a run stopped after its first checkpoint
# (tools/pipeline_stages.sh; delete OUT to start over). PAIRS sets the pairs per reflow
# (default 100000).
set -euo pipefail
data=${1:-moons}
bin=${2:-build/bin}
source=${SOURCE:-gaussian}
if [[ "$source" == gaussian ]]; then default_out=runs/straight_${data}; else default_out=runs/straight_${data}_from_${source}; fi
out=${OUT:-$default_out}
pairs=${PAIRS:-100000}
mkdir -p "$out"
start=$SECONDS

train_flags=(--quiet --set data.name="\"$data\"" --set data.source="\"$source\"" --set device='"cpu"')
# shellcheck source=tools/pipeline_stages.sh
source "$(dirname "$0")/pipeline_stages.sh"

pairs_from() {  # pairs_from TEACHER_RUN FILE
  stage "pairs from $1"
  "$bin/fmreflow" --teacher "$out/$1/checkpoint.safetensors" --out "$out/$2" --count "$pairs" --device cpu --quiet
}

train 1rf configs/moons.json
train ot configs/moons_ot.json
train vp configs/moons.json --set path.scheduler='"vp"'
pairs_from 1rf pairs_1rf.safetensors
train 2rf configs/moons_reflow.json --set data.pairs="\"$out/pairs_1rf.safetensors\"" \
  --set train.init_from="\"$out/1rf/checkpoint.safetensors\""
pairs_from 2rf pairs_2rf.safetensors
train 3rf configs/moons_reflow.json --set data.pairs="\"$out/pairs_2rf.safetensors\"" \
  --set train.init_from="\"$out/2rf/checkpoint.safetensors\""
for k in 1 2 4; do
  train "2rf_distill$k" configs/moons_distill.json --set data.pairs="\"$out/pairs_2rf.safetensors\"" \
    --set train.init_from="\"$out/2rf/checkpoint.safetensors\"" --set train.time_grid=$k --set sample.steps=$k
done

stage "evaluation"
runs=(1rf ot vp 2rf 3rf 2rf_distill1 2rf_distill2 2rf_distill4)
checkpoints=()
for r in "${runs[@]}"; do checkpoints+=("$out/$r/checkpoint.safetensors"); done
"$bin/fmeval" straight "${checkpoints[@]}" --labels "$(IFS=,; echo "${runs[*]}")" --device cpu \
  --csv "$out/quality_vs_nfe.csv" --png "$out/quality_vs_nfe.png" --trajectories "$out/paths" | tee "$out/report.txt"
echo "pipeline for $data (source $source): $((SECONDS - start)) s; report in $out/report.txt"
