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
entries=(
  "conv_fwd_28x28_64to64|conv2d|256x64x28x28>64 k3s1p1|ForwardPass|conv2d 3x3 forward at 28x28 (0.68x cuDNN)"
  "conv_dgrad_7x7_64to64|conv2d|256x64x7x7>64 k3s1p1|DgradPass|conv2d 3x3 input gradient at 7x7 (0.47x)"
  "conv_dgrad_7x7_128to64|conv2d|256x128x7x7>64 k3s1p1|DgradPass|conv2d 3x3 input gradient at 7x7 (0.61x)"
  "conv_dgrad_1x1_64to16|conv2d|256x64x28x28>16 k1s1p0|DgradPass|conv2d 1x1 input gradient at 28x28 (0.59x)"
  "convT_dgrad_14x14|conv_transpose2d|256x32x14x14>32|ForwardPass|conv_transpose2d input gradient 14->28 (0.61x)"
  "convT_dgrad_7x7|conv_transpose2d|256x64x7x7>64|ForwardPass|conv_transpose2d input gradient 7->14 (0.73x)"
  "gn_fwd_cached|group_norm|256x64x28x28 G8|forward_cached|GroupNorm v3 forward (group in shared memory)"
  "gn_bwd_cached|group_norm|256x64x28x28 G8|backward_cached|GroupNorm v3 backward"
  "flash_bwd_dq|attention|B256 H4 L196 D32|backward_dq|flash attention backward dQ kernel, L196 D32 (0.68x unfused)"
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
