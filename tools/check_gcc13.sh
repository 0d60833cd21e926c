#!/usr/bin/env bash
# tools/check_gcc13.sh — compile every translation unit with GCC 13, the compiler of the lent GPU
# machine's image, before spending device time there. Debian 12 has GCC 12 only, and GCC 13 rejects
# code GCC 12 accepts (its C++20 comparison rules refuse `std::string == json`: nlohmann/json issue
# 4165); a build that breaks on the device costs a whole call.
#
#   bash tools/check_gcc13.sh          # prints each failing file with its errors; exit 1 if any
#
# How: GCC 13 and the C library it was built against come from the next Debian release's packages
# (apt-get download with a private package list; nothing is installed), unpacked into
# build-gcc13/toolchain and run through that C library's loader. The C++ files are checked with
# -fsyntax-only; the .cu files are compiled by nvcc with GCC 13 as the host compiler (nvcc -ccbin).
# Nothing is linked: GCC 13's libstdc++ needs a newer C library than this machine's.
# FM_GCC13_JOBS (default: the core count) files at a time; FM_GCC13_ONLY (a Python regular
# expression) checks only the files whose path it matches, e.g. 'toy_law|datasets2d' after a change
# (a changed header still needs the whole check). The toolchain is kept for the next call.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD/build-gcc13"
tc="$root/toolchain"
export PATH=/usr/local/cuda/bin:$PATH

if [[ ! -x $tc/wrap/g++-13 ]]; then
  echo "check_gcc13: fetching GCC 13 (once)..."
  rm -rf "$tc" && mkdir -p "$tc"/{lists,cache,debs,gcc,libc,wrap/libexec}
  # The archive this machine already uses, with the next release's suite.
  mirror=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [[ -n $mirror ]] || { echo "check_gcc13: no Debian archive in /etc/apt/sources.list.d/debian.sources" >&2; exit 2; }
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" >"$tc/sources.list"
  apt_options=(-o Dir::Etc::SourceList="$tc/sources.list" -o Dir::Etc::SourceParts=/dev/null
               -o Dir::State::Lists="$tc/lists" -o Dir::Cache="$tc/cache" -o Dir::State::Status=/dev/null)
  apt-get "${apt_options[@]}" update >/dev/null
  gcc_packages=(g++-13 g++-13-x86-64-linux-gnu cpp-13 cpp-13-x86-64-linux-gnu gcc-13 gcc-13-x86-64-linux-gnu
                libstdc++-13-dev libgcc-13-dev gcc-13-base libisl23 libmpc3 libmpfr6)
  libc_packages=(libc6 libzstd1 libgmp10 zlib1g libstdc++6 libgcc-s1)
  # (apt warns that root downloads unsandboxed into a folder its own user cannot write: expected here)
  (cd "$tc/debs" && apt-get "${apt_options[@]}" download "${gcc_packages[@]}" "${libc_packages[@]}" >/dev/null) \
    2> >(grep -v "unsandboxed" >&2)
  for p in "${gcc_packages[@]}"; do dpkg-deb -x "$tc"/debs/"${p}"_*.deb "$tc/gcc"; done
  for p in "${libc_packages[@]}"; do dpkg-deb -x "$tc"/debs/"${p}"_*.deb "$tc/libc"; done
  rm -rf "$tc/debs" "$tc/cache" "$tc/lists"
  # Every GCC 13 program runs through the newer loader with the newer C library.
  libc="$tc/libc/usr/lib/x86_64-linux-gnu"
  run="$libc/ld-linux-x86-64.so.2 --library-path $libc:$tc/gcc/usr/lib/x86_64-linux-gnu"
  for program in cc1 cc1plus; do
    printf '#!/bin/sh\nexec %s %s "$@"\n' "$run" "$tc/gcc/usr/libexec/gcc/x86_64-linux-gnu/13/$program" \
      >"$tc/wrap/libexec/$program"
  done
  cxx="$tc/gcc/usr/include/c++/13"
  printf '#!/bin/sh\nexec %s %s -B%s/ -nostdinc++ -isystem %s -isystem %s -isystem %s "$@"\n' "$run" \
    "$tc/gcc/usr/bin/g++-13" "$tc/wrap/libexec" "$cxx" "$tc/gcc/usr/include/x86_64-linux-gnu/c++/13" "$cxx/backward" \
    >"$tc/wrap/g++-13"
  chmod +x "$tc"/wrap/g++-13 "$tc"/wrap/libexec/*
fi
"$tc/wrap/g++-13" --version | head -1

# The compile commands of a normal configuration (GCC 12 configures; GCC 13 compiles).
cmake -S . -B "$root/config" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >"$root/configure.log"
mkdir -p "$root/objects"
python3 - "$root" "$tc/wrap/g++-13" "${FM_GCC13_JOBS:-$(nproc)}" <<'EOF'
import json, os, re, shlex, subprocess, sys
from concurrent.futures import ThreadPoolExecutor
root, gxx, jobs = sys.argv[1], sys.argv[2], int(sys.argv[3])
commands = json.load(open(f"{root}/config/compile_commands.json"))
only = os.environ.get("FM_GCC13_ONLY")
if only:
    commands = [entry for entry in commands if re.search(only, entry["file"])]
    if not commands:
        sys.exit(f"check_gcc13: FM_GCC13_ONLY='{only}' matches no file of the build")

def compile_one(numbered):
    number, entry = numbered
    args = shlex.split(entry["command"])
    out = args.index("-o")
    if entry["file"].endswith(".cu"):  # nvcc with GCC 13 for the host code; the object is thrown away
        args[out + 1] = f"{root}/objects/{number}.o"
        args = [args[0], "-ccbin", gxx] + args[1:]
    else:
        del args[out:out + 2]
        args = [gxx, "-fsyntax-only"] + args[1:]
    done = subprocess.run(args, cwd=entry["directory"], capture_output=True, text=True)
    return entry["file"], done.returncode, done.stderr

failures = 0
with ThreadPoolExecutor(jobs) as pool:
    for source, rc, stderr in pool.map(compile_one, enumerate(commands)):
        if rc != 0:
            failures += 1
            print(f"FAILED {source}")
            print("\n".join(line for line in stderr.splitlines() if "error" in line)[:3000], flush=True)
print(f"check_gcc13: {len(commands) - failures} of {len(commands)} files compile with GCC 13")
sys.exit(1 if failures else 0)
EOF
