#!/usr/bin/env bash
# tools/fetch_device_deps.sh — prepare .deps/ for a machine without a package registry (the lent
# GPU machine): download the Debian packages the build needs and unpack them into .deps/root.
# Run here (with apt access); then carry .deps to the GPU machine and run tools/gpu_check.sh there.
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(catch2 nlohmann-json3-dev libstb-dev libstb0 zlib1g-dev libgif-dev libgif7 dataset-fashion-mnist)
rm -rf .deps && mkdir -p .deps/debs .deps/root
(cd .deps/debs && apt-get download "${packages[@]}" >/dev/null)
for deb in .deps/debs/*.deb; do dpkg -x "$deb" .deps/root; done
rm -rf .deps/debs
# Documentation and manual pages (3 MB) are of no use there, and a device call's working tree, carried
# paths included, may hold at most 64 MiB (docs/gpu.md, "What a device call can carry").
rm -rf .deps/root/usr/share/doc .deps/root/usr/share/man
du -sh .deps
