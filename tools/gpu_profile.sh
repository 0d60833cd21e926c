#!/usr/bin/env bash
# tools/gpu_profile.sh — Nsight Compute profiles of the kernels behind the kernel lab's missed
# targets, one shape each, so a note can say what limits them from a profile and not a guess.
#
# For each entry below: fmbench runs one subcommand on one shape (--filter), and ncu records the
# first launch whose name matches the regex (the validation run of that version: same kernel, same
# grid as the timed runs) with the Speed of Light, occupancy, launch, scheduler, warp-stall and
# memory sections. Needs build-gpu/bin/fmbench (tools/gpu_check.sh builds it) and ncu.
#   usage: bash tools/gpu_profile.sh [NAME ...]     (no NAME: every entry)
# Output: $OUT (if set) or build-gpu/logs, one ncu_<NAME>.txt per entry.
set -uo pipefail
cd "$(dirname "$0")/.."
bench=build-gpu/bin/fmbench
logs="${OUT:-build-gpu/logs}"
mkdir -p "$logs"
export PATH=/usr/local/cuda/bin:$PATH
command -v ncu >/dev/null || { echo "gpu_profile: ncu not found" >&2; exit 1; }
[[ -x $bench ]] || { echo "gpu_profile: $bench not built (run tools/gpu_check.sh first)" >&2; exit 1; }

# NAME | fmbench subcommand | --filter shape | kernel name regex | what it is
# (the ratios are those of the run of 2026-11-22 after the session's changes, docs/ops/*.md §7)
entries=(
  "conv_fwd_28x28_64to64|conv2d|256x64x28x28>64 k3s1p1|ForwardPass|conv2d 3x3 forward at 28x28 (0.72x cuDNN)"
  "conv_dgrad_7x7_64to64|conv2d|256x64x7x7>64 k3s1p1|DgradPass|conv2d 3x3 input gradient at 7x7, split-K (0.65x)"
  "convT_dgrad_14x14|conv_transpose2d|256x32x14x14>32|ForwardPass|conv_transpose2d input gradient 14->28 (0.65x)"
  "gn_fwd_cached|group_norm|256x64x28x28 G8|forward_cached|GroupNorm v3 forward (group in shared memory)"
  "gn_bwd_cached|group_norm|256x64x28x28 G8|backward_cached|GroupNorm v3 backward"
  "gn_fwd_large|group_norm|64x256x64x64 G8|group_norm_forward_kernel|GroupNorm v2 forward on 512 KB groups (61% of copy bandwidth)"
  "flash_fwd|attention|B256 H4 L196 D32|flash_attention_forward|flash attention forward, L196 D32"
  "flash_bwd_dkdv|attention|B256 H4 L196 D32|backward_dkdv|flash attention backward dK/dV(+dQ partials), L196 D32 (0.91x unfused)"
)

wanted=("$@")
for entry in "${entries[@]}"; do
  IFS='|' read -r name subcommand filter regex what <<<"$entry"
  if [[ ${#wanted[@]} -gt 0 && ! " ${wanted[*]} " =~ " $name " ]]; then continue; fi
  out="$logs/ncu_$name.txt"
  echo "== $name: $what"
  ncu --kernel-name-base demangled --kernel-name "regex:$regex" --launch-count 1 \
      --section SpeedOfLight --section Occupancy --section LaunchStats --section SchedulerStats \
      --section WarpStateStats --section MemoryWorkloadAnalysis \
      "$bench" "$subcommand" --filter "$filter" --repeats 5 >"$out" 2>&1
  echo "   rc $? -> $out"
  grep -E "^  [a-z_].*\(|Duration|Compute \(SM\) Throughput|Memory Throughput|DRAM Throughput|Achieved Occupancy|Registers Per|Waves Per SM|Block Limit" "$out" | head -14
done
