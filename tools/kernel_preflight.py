#!/usr/bin/env python3
"""tools/kernel_preflight.py — will each of our CUDA kernels launch on the GPU, and how full will an SM be?

A kernel launch can fail on a GPU for reasons no CPU test sees: the block asks for more registers
than an SM has (a kernel compiled to 128 registers per thread cannot start 1024 threads), more shared
memory than a block may have, or more threads than the kernel's __launch_bounds__ promised the
compiler. Whether it fits depends on what ptxas made of the kernel, so this tool asks ptxas: it
compiles kernels/cuda/*.cu exactly as the CUDA build does (the commands in its
compile_commands.json) with `-Xptxas -v`, and reads, per kernel, its registers per thread, static
shared memory, local-memory stack frame, spills and barriers, plus the __launch_bounds__ that nvcc
wrote into the PTX (.maxntid, .minnctapersm).

The launches come from the CUDA emulator (kernels/cuda_emulator/launch_log.cpp): run the emulated
tests with FM_EMU_LAUNCH_LOG=FILE and each distinct (kernel, threads per block, dynamic shared
bytes) they launched is in FILE. nm names each kernel; its demangled name is the same in the
emulator's g++ build and in nvcc's device code, which is how the two are joined.

What fails the check (exit status 1), per launch and per target architecture:
  * more threads per block than the kernel's __launch_bounds__ (the launch fails),
  * more registers than one block may hold (the launch fails: "too many resources requested"),
  * static + dynamic shared memory over the block limit, or dynamic over what the kernel was
    allowed (48 KiB less its static memory unless cudaFuncSetAttribute raised it), or a raise that
    the GPU refuses (static + the raised limit over the block limit),
  * a __launch_bounds__(threads, min_blocks) promise that the kernel's shared memory breaks: fewer
    than min_blocks blocks fit an SM, so ptxas capped the registers for an occupancy that never
    happens.
What it reports without failing: spills and local-memory frames (slow, not wrong), the resident
blocks and warps per SM of each launch (occupancy, as the CUDA occupancy calculator counts it,
assuming the driver picks the largest shared-memory carve-out), and the kernels no test launched
(a failure with --require-all-launched, as CI runs it: a kernel no test runs is unverified code).

Usage:
  python3 tools/kernel_preflight.py --cuda-build build [--launch-log FILE [--require-all-launched]]
                                    [--report FILE.md] [--jobs N]

The SM limits below are those of NVIDIA's "Technical Specifications per Compute Capability" table
and cuda_occupancy.h, for the architectures the project builds for (tensor-core kernels need 8.0+).
"""

import argparse
import concurrent.futures
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

KIB = 1024


@dataclass(frozen=True)
class SmLimits:
    shared_per_sm: int            # the largest shared-memory carve-out of an SM, bytes
    shared_per_block_optin: int   # the most one block may have after cudaFuncSetAttribute
    threads_per_sm: int
    blocks_per_sm: int
    shared_per_block_default: int = 48 * KIB
    reserved_shared_per_block: int = 1 * KIB  # what the driver keeps per block (8.0 and later)
    shared_granularity: int = 128
    registers_per_sm: int = 64 * KIB
    registers_per_block: int = 64 * KIB
    max_registers_per_thread: int = 255
    register_granularity: int = 256  # registers are given to a warp in units of this many
    sub_partitions: int = 4          # an SM's register file is split in 4, one per scheduler


SM_LIMITS = {
    "sm_80": SmLimits(164 * KIB, 163 * KIB, 2048, 32),
    "sm_86": SmLimits(100 * KIB, 99 * KIB, 1536, 16),
    "sm_89": SmLimits(100 * KIB, 99 * KIB, 1536, 24),
    "sm_90": SmLimits(228 * KIB, 227 * KIB, 2048, 32),
}


def round_up(n, to):
    return (n + to - 1) // to * to


@dataclass
class Kernel:
    """What ptxas and the PTX say about one kernel for one architecture."""
    mangled: str
    arch: str
    source: str = ""
    registers: int = 0
    barriers: int = 0
    static_shared: int = 0
    stack_frame: int = 0
    spill_stores: int = 0
    spill_loads: int = 0
    max_threads: int = 0      # __launch_bounds__'s first argument (.maxntid), 0 if none
    min_blocks: int = 0       # its second (.minnctapersm), 0 if none
    name: str = ""            # demangled


@dataclass(frozen=True)
class Launch:
    """One distinct launch the emulated tests made."""
    name: str
    threads: int
    dynamic_shared: int
    opt_in: int  # cudaFuncSetAttribute's dynamic limit, -1 when never set


@dataclass
class Findings:
    failures: list = field(default_factory=list)
    warnings: list = field(default_factory=list)


# ---- ptxas and PTX ---------------------------------------------------------------------------------

PTXAS_ENTRY = re.compile(r"Compiling entry function '([^']+)' for '(sm_\d+a?)'")
PTXAS_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
PTXAS_USED = re.compile(r"Used (\d+) registers(.*)")


PTXAS_PROPERTIES = re.compile(r"Function properties for (\S+)")


def parse_ptxas(text, source=""):
    """Kernels from `nvcc -Xptxas -v` output: one Kernel per (entry, architecture)."""
    kernels, current, properties_of = [], None, None
    for line in text.splitlines():
        if m := PTXAS_ENTRY.search(line):
            current = Kernel(mangled=m.group(1), arch=m.group(2).rstrip("a"), source=source)
            kernels.append(current)
        elif m := PTXAS_PROPERTIES.search(line):
            properties_of = m.group(1)  # the entry's own, or a non-inlined callee's
        elif current is None:
            continue
        elif m := PTXAS_FRAME.search(line):
            if properties_of == current.mangled:
                current.stack_frame, current.spill_stores, current.spill_loads = map(int, m.groups())
        elif m := PTXAS_USED.search(line):
            current.registers = int(m.group(1))
            rest = m.group(2)
            if b := re.search(r"used (\d+) barriers", rest):
                current.barriers = int(b.group(1))
            if s := re.search(r"(\d+) bytes smem", rest):
                current.static_shared = int(s.group(1))
            current = None  # the entry's report ends here
    return kernels


PTX_ENTRY = re.compile(r"\.entry\s+([\w$.]+)\s*\(")


def parse_ptx_bounds(text):
    """{mangled name: (max threads, min blocks)} from the .maxntid / .minnctapersm of each entry."""
    bounds = {}
    for m in PTX_ENTRY.finditer(text):
        # The directives sit between the parameter list and the body's opening brace.
        header = text[m.end(): text.find("{", m.end())]
        max_threads = 0
        if n := re.search(r"\.maxntid\s+(\d+)(?:\s*,\s*(\d+))?(?:\s*,\s*(\d+))?", header):
            max_threads = 1
            for g in n.groups():
                max_threads *= int(g) if g else 1
        min_blocks = int(b.group(1)) if (b := re.search(r"\.minnctapersm\s+(\d+)", header)) else 0
        bounds[m.group(1)] = (max_threads, min_blocks)
    return bounds


def compile_for_report(entry, scratch, nvcc_extra=()):
    """Compiles one compile_commands.json entry with -Xptxas -v, keeping the PTX; returns kernels."""
    args = shlex.split(entry["command"]) if "command" in entry else list(entry["arguments"])
    # Without its output and dependency-file flags: this compile must not touch the build's files.
    kept, skip = [], 0
    for a in args:
        if skip:
            skip -= 1
        elif a in ("-o", "-MT", "-MF", "-MQ"):
            skip = 1
        elif a not in ("-MD", "-MMD"):
            kept.append(a)
    args = kept
    name = os.path.basename(entry["file"])
    keep = os.path.join(scratch, name + ".keep")
    os.makedirs(keep, exist_ok=True)
    args += ["-o", os.path.join(scratch, name + ".o"), "-Xptxas", "-v", "--keep", "--keep-dir", keep, *nvcc_extra]
    done = subprocess.run(args, cwd=entry["directory"], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"compiling {entry['file']} failed:\n{done.stderr[-3000:]}")
    kernels = parse_ptxas(done.stdout + done.stderr, source=os.path.relpath(entry["file"]))
    bounds = {}
    for f in os.listdir(keep):
        if f.endswith(".ptx"):
            with open(os.path.join(keep, f)) as ptx:
                bounds.update(parse_ptx_bounds(ptx.read()))
    for k in kernels:
        k.max_threads, k.min_blocks = bounds.get(k.mangled, (0, 0))
    return kernels


def demangle(names):
    names = list(names)
    if not names:
        return {}
    out = subprocess.run(["c++filt"], input="\n".join(names) + "\n", capture_output=True, text=True, check=True)
    return dict(zip(names, out.stdout.splitlines()))


# ---- the emulator's launch log ---------------------------------------------------------------------

def elf_is_position_independent(path):
    with open(path, "rb") as f:
        header = f.read(18)
    return header[:4] == b"\x7fELF" and int.from_bytes(header[16:18], "little") == 3  # ET_DYN


def symbols_by_address(path):
    """{link-time address: [mangled names]} of the functions nm finds in `path` (several names can
    share an address: aliases, or identical functions the linker folded)."""
    out = subprocess.run(["nm", "--defined-only", path], capture_output=True, text=True, check=True).stdout
    table = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "tTwW":
            table.setdefault(int(parts[0], 16), []).append(parts[2])
    return table


def name_at(names):
    """The one function name among a symbol's names, None if they name different functions. Local
    aliases ("x.localalias") and clones ("x.cold") are the same function under a suffix."""
    plain = sorted({n for n in names if "." not in n}) or sorted(set(names))
    return plain[0] if len(plain) == 1 else None


def read_launch_log(path):
    """Launches from an FM_EMU_LAUNCH_LOG file, named by their demangled kernel names; also the
    number of lines no one symbol could be found for, and the files rebuilt since the log was
    written (their addresses may now name other functions)."""
    raw, unnamed = [], 0
    with open(path) as f:
        for number, line in enumerate(f, 1):
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 6:
                raise ValueError(f"{path}:{number}: expected 6 tab-separated fields, got {len(fields)}")
            obj, address, base, threads, dynamic, opt_in = fields
            raw.append((obj, int(address, 16), None if base == "-" else int(base, 16), int(threads), int(dynamic),
                        -1 if opt_in == "-" else int(opt_in)))
    log_written = os.path.getmtime(path)
    symbols, pie, rebuilt = {}, {}, []
    for obj in {r[0] for r in raw}:
        exists = os.path.exists(obj)
        symbols[obj] = symbols_by_address(obj) if exists else {}
        pie[obj] = exists and elf_is_position_independent(obj)
        if exists and os.path.getmtime(obj) > log_written:
            rebuilt.append(obj)
    mangled = []
    for obj, address, base, threads, dynamic, opt_in in raw:
        names = None if base is None else symbols[obj].get(address - base if pie[obj] else address)
        name = name_at(names) if names else None
        if name is None:
            unnamed += 1
            continue
        mangled.append((name, threads, dynamic, opt_in))
    readable = demangle({m[0] for m in mangled})
    launches = {Launch(readable[n], t, d, o) for n, t, d, o in mangled}  # the same launch from many tests: once
    return sorted(launches, key=lambda l: (l.name, l.threads, l.dynamic_shared)), unnamed, sorted(rebuilt)


# ---- the checks ------------------------------------------------------------------------------------

def shared_limit_for(kernel, launch, limits):
    """The dynamic shared memory this launch may use: 48 KiB less the static memory, or what
    cudaFuncSetAttribute allowed (itself capped so static + dynamic fits the opt-in limit)."""
    if launch.opt_in >= 0:
        return min(launch.opt_in, limits.shared_per_block_optin - kernel.static_shared)
    return limits.shared_per_block_default - kernel.static_shared


def kernel_opt_in_too_large(kernel, launch, limits):
    return kernel.static_shared + launch.opt_in > limits.shared_per_block_optin


def blocks_per_sm(kernel, threads, dynamic_shared, limits):
    """Resident blocks per SM and what limits them (cuda_occupancy.h's arithmetic); 0 = cannot launch."""
    warps = (threads + 31) // 32
    regs_per_warp = round_up(kernel.registers * 32, limits.register_granularity)
    # The hardware checks a block's registers as if its warps were spread over all sub-partitions.
    if regs_per_warp * round_up(warps, limits.sub_partitions) > limits.registers_per_block:
        return 0, "registers"
    by_registers = (limits.registers_per_sm // limits.sub_partitions // regs_per_warp * limits.sub_partitions // warps
                    if regs_per_warp else limits.blocks_per_sm)
    shared = round_up(kernel.static_shared + dynamic_shared + limits.reserved_shared_per_block,
                      limits.shared_granularity)
    by_shared = limits.shared_per_sm // shared
    by_threads = limits.threads_per_sm // (warps * 32)
    # On a tie the SM's fixed caps are named first: the kernel's resources are then not what limits it.
    candidates = [(by_threads, "threads"), (limits.blocks_per_sm, "blocks"), (by_registers, "registers"),
                  (by_shared, "shared memory")]
    return min(candidates, key=lambda c: c[0])


def short_name(name):
    """A kernel's name without namespaces and parameter list, for tables."""
    name = re.sub(r"^void ", "", name)
    name = re.sub(r"(fm::kernels::)?(\(anonymous namespace\)::)?", "", name)
    name = name.replace("fm::", "")
    depth, cut = 0, len(name)
    for i, c in enumerate(name):  # drop the trailing (parameters)
        if c == "<":
            depth += 1
        elif c == ">":
            depth -= 1
        elif c == "(" and depth == 0:
            cut = i
            break
    return name[:cut]


def check(kernels, launches, findings):
    """Sets launches against kernels; returns {(name, arch): [(launch, blocks, limiter)]}."""
    by_name = {}
    for k in kernels:
        by_name.setdefault(k.name, []).append(k)
    for name, same in by_name.items():
        # Kernels in anonymous namespaces of two files demangle alike: a launch could not tell them apart.
        if len({k.source for k in same}) > 1:
            findings.failures.append(f"{short_name(name)}: defined in {', '.join(sorted({k.source for k in same}))}; "
                                     "a launch cannot be told apart by name (rename one)")
    seen = {}
    for launch in launches:
        for k in by_name.get(launch.name, []):
            limits = SM_LIMITS[k.arch]
            where = f"{short_name(k.name)} [{k.arch}] with {launch.threads} threads, {launch.dynamic_shared} B dynamic shared"
            blocks, limiter = blocks_per_sm(k, launch.threads, launch.dynamic_shared, limits)
            seen.setdefault((k.name, k.arch), []).append((launch, blocks, limiter))
            if k.max_threads and launch.threads > k.max_threads:
                findings.failures.append(f"{where}: more threads than its __launch_bounds__ ({k.max_threads})")
            if k.registers > limits.max_registers_per_thread or blocks == 0 and limiter == "registers":
                findings.failures.append(f"{where}: {k.registers} registers per thread do not fit one block")
            allowed = shared_limit_for(k, launch, limits)
            if launch.opt_in >= 0 and kernel_opt_in_too_large(k, launch, limits):
                findings.failures.append(
                    f"{where}: cudaFuncSetAttribute's {launch.opt_in} B of dynamic shared memory plus "
                    f"{k.static_shared} B static exceed the {limits.shared_per_block_optin} B a block may have "
                    "(the call itself fails on a GPU)")
            if launch.dynamic_shared > allowed:
                findings.failures.append(
                    f"{where}: dynamic shared memory over the {allowed} B allowed "
                    f"({k.static_shared} B static; "
                    + ("cudaFuncSetAttribute never called)" if launch.opt_in < 0 else f"opt-in {launch.opt_in} B)"))
            elif blocks == 0 and limiter != "registers":  # registers: reported above
                findings.failures.append(f"{where}: not one block fits an SM ({limiter})")
    for k in kernels:
        limits = SM_LIMITS[k.arch]
        if k.min_blocks:
            # The promise is checked at the largest dynamic shared memory any test launched it with.
            dynamic = max((l.dynamic_shared for l, _, _ in seen.get((k.name, k.arch), [])), default=0)
            threads = k.max_threads or 32
            fit, limiter = blocks_per_sm(k, threads, dynamic, limits)
            if fit < k.min_blocks:
                findings.failures.append(
                    f"{short_name(k.name)} [{k.arch}]: __launch_bounds__ asks {k.min_blocks} blocks per SM, "
                    f"only {fit} fit ({limiter}, {k.static_shared} B static + {dynamic} B dynamic shared)")
        if k.spill_stores or k.spill_loads:
            findings.warnings.append(f"{short_name(k.name)} [{k.arch}]: spills {k.spill_stores} B stored / "
                                     f"{k.spill_loads} B loaded per thread")
    return seen


def render_report(kernels, seen, launches_given):
    """A Markdown table, one row per kernel and architecture, sorted by source file and name."""
    rows = ["| kernel | file | arch | regs | static smem | stack | spills | bounds | launched as (threads, dyn smem) → blocks/SM, warps/SM, limit |",
            "|---|---|---|---|---|---|---|---|---|"]
    for k in sorted(kernels, key=lambda k: (k.source, k.name, k.arch)):
        bounds = f"{k.max_threads}" + (f", {k.min_blocks}" if k.min_blocks else "") if k.max_threads else "—"
        uses = seen.get((k.name, k.arch), [])
        if uses:
            launched = "; ".join(
                f"({l.threads}, {l.dynamic_shared}) → {b}, {b * ((l.threads + 31) // 32)}, {lim}"
                for l, b, lim in sorted(uses, key=lambda u: (u[0].threads, u[0].dynamic_shared)))
        else:
            launched = "**not launched by any test**" if launches_given else "—"
        spills = f"{k.spill_stores}/{k.spill_loads}" if (k.spill_stores or k.spill_loads) else "0"
        rows.append(f"| `{short_name(k.name)}` | {os.path.basename(k.source)} | {k.arch} | {k.registers} | "
                    f"{k.static_shared} | {k.stack_frame} | {spills} | {bounds} | {launched} |")
    return "\n".join(rows) + "\n"


# ---- main --------------------------------------------------------------------------------------------

def kernel_sources(build_dir):
    path = os.path.join(build_dir, "compile_commands.json")
    if not os.path.exists(path):
        raise SystemExit(f"kernel_preflight: {path} not found; expected a CUDA build configured with CMake "
                         "(CMAKE_EXPORT_COMPILE_COMMANDS is on in this project)")
    with open(path) as f:
        entries = json.load(f)
    chosen = [e for e in entries
              if e["file"].endswith(".cu") and os.sep + os.path.join("kernels", "cuda") + os.sep in e["file"]]
    if not chosen:
        raise SystemExit(f"kernel_preflight: no kernels/cuda/*.cu in {path}; expected a CUDA build "
                         "(configured where nvcc was found), not a CPU-only or emulator one")
    return chosen


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cuda-build", required=True, help="a CUDA build directory (has compile_commands.json)")
    parser.add_argument("--launch-log", help="an FM_EMU_LAUNCH_LOG file from the emulated tests")
    parser.add_argument("--report", help="write the per-kernel table (Markdown) here")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--require-all-launched", action="store_true",
                        help="fail when a kernel of the build was launched by no test (with --launch-log)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        raise SystemExit(f"kernel_preflight: --jobs {args.jobs}; expected a positive integer")
    if args.launch_log and not os.path.exists(args.launch_log):
        raise SystemExit(f"kernel_preflight: --launch-log {args.launch_log} does not exist; expected the file "
                         "FM_EMU_LAUNCH_LOG named while the emulated tests ran")
    for tool in ("c++filt", "nm"):
        if not shutil.which(tool):
            raise SystemExit(f"kernel_preflight: {tool} not found; expected binutils on PATH")

    entries = kernel_sources(args.cuda_build)
    kernels = []
    with tempfile.TemporaryDirectory(prefix="kernel_preflight.") as scratch:
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for found in pool.map(lambda e: compile_for_report(e, scratch), entries):
                kernels.extend(found)
    unknown = sorted({k.arch for k in kernels if k.arch not in SM_LIMITS})
    if unknown:
        raise SystemExit(f"kernel_preflight: no SM limits for {', '.join(unknown)}; expected one of "
                         f"{', '.join(SM_LIMITS)} (add its row to SM_LIMITS)")
    names = demangle({k.mangled for k in kernels})
    for k in kernels:
        k.name = names[k.mangled]

    launches, unnamed, rebuilt = read_launch_log(args.launch_log) if args.launch_log else ([], 0, [])
    findings = Findings()
    seen = check(kernels, launches, findings)
    # A log that names nothing, lines nm cannot name, or binaries newer than the log mean the join
    # is broken, not that all is well.
    if unnamed:
        findings.failures.append(f"{unnamed} launch-log lines name no one symbol")
    if rebuilt:
        findings.failures.append(f"{len(rebuilt)} logged binaries were rebuilt after the log was written "
                                 f"(e.g. {rebuilt[0]}): run the emulated tests again with FM_EMU_LAUNCH_LOG")
    if args.launch_log and not seen:
        findings.failures.append("no launch in the log is of a kernel of this CUDA build: the log is empty, or "
                                 "the emulator and CUDA builds are of different sources")
    compiled_names = {k.name for k in kernels}
    foreign = sorted({l.name for l in launches if l.name not in compiled_names})
    launched_names = {name for name, _ in seen}
    never = sorted(compiled_names - launched_names)
    if args.require_all_launched and args.launch_log and never:
        findings.failures.append(f"{len(never)} kernels were launched by no test (listed above): each kernel "
                                 "needs an emulated test that runs it (or, if no caller reaches it, to go)")

    if args.report:
        with open(args.report, "w") as f:
            f.write(render_report(kernels, seen, bool(args.launch_log)))
    arches = sorted({k.arch for k in kernels})
    print(f"kernel_preflight: {len({k.name for k in kernels})} kernels in {len(entries)} files for "
          f"{', '.join(arches)}; {len(launches)} distinct launches read"
          + (f" ({unnamed} log lines without a symbol)" if unnamed else ""))
    if args.launch_log:
        print(f"  launched by the tests: {len(launched_names)} of {len(compiled_names)} kernels")
        for n in never:
            print(f"  not launched by any test: {short_name(n)}")
        if foreign:
            print(f"  {len(foreign)} launched kernels are not in kernels/cuda/ (the tests' own): "
                  + ", ".join(short_name(n) for n in foreign[:6]) + (" ..." if len(foreign) > 6 else ""))
    for w in findings.warnings:
        print(f"  note: {w}")
    for f in findings.failures:
        print(f"  FAIL: {f}")
    print(f"kernel_preflight: {'FAILED' if findings.failures else 'passed'}: {len(findings.failures)} problems, "
          f"{len(findings.warnings)} notes")
    return 1 if findings.failures else 0


if __name__ == "__main__":
    sys.exit(main())
