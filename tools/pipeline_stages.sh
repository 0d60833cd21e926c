# tools/pipeline_stages.sh — the stage helpers the straight-paths pipelines (tools/straight_pipeline.sh,
# tools/straight_pipeline_images.sh) share. Sourced, not run. The caller sets:
#   bin          the folder of fmtrain
#   out          the pipeline's folder (each run in out/NAME)
#   start        $SECONDS at the pipeline's start
#   train_flags  an array of flags every new fmtrain run gets after its config (device, data set, ...)

# stage TEXT: a progress line with the time since the start.
stage() { echo "== $1 ($((SECONDS - start)) s since the start)"; }

# train NAME CONFIG [--set ...]: trains out/NAME from CONFIG unless it finished already (its
# summary.json exists). A run stopped after its first checkpoint resumes from it (its folder holds the
# config with every --set applied); a run stopped before that starts over.
train() {
  local name=$1 config=$2
  shift 2
  if [[ -f "$out/$name/summary.json" ]]; then
    echo "== $name: done already ($out/$name)"
    return
  fi
  stage "$name"
  if [[ -f "$out/$name/checkpoint.safetensors" ]]; then
    "$bin/fmtrain" --resume "$out/$name"
  else
    rm -rf "${out:?}/$name"
    "$bin/fmtrain" "$config" --out "$out/$name" "${train_flags[@]}" "$@"
  fi
}
