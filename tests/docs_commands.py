#!/usr/bin/env python3
# tests/docs_commands.py — runs the commands the chapters show, so the course cannot rot unnoticed.
#
#   python3 tests/docs_commands.py BUILD_DIR [--list] [--run-slow] [FILTER ...]
#
# Every command block in docs/**/*.md and README.md (a ```sh, ```bash, ```shell or ```console fence,
# or a plain ``` fence whose first line is a "$ " prompt) must be preceded by a marker comment:
#
#   <!-- docs-test: fast -->                   run it (CI); a few seconds at most
#   <!-- docs-test: slow (why) -->             listed and skipped (long training, ...); --run-slow runs
#                                              it (and skips the setup blocks that stand in for it)
#   <!-- docs-test: gpu (why) -->              run only when the build has CUDA and a GPU is present
#   <!-- docs-test: skip (why) -->             never run: downloads, machine-specific output, and
#                                              scripts that configure builds themselves (they would
#                                              reconfigure the build under test)
#
# After the kind, a marker may add options, separated by commas:
#   same output            a "$ " transcript: the output lines it shows must be the last lines its
#                          commands print (only for output that does not change from run to run)
#   needs numpy            (or torch, safetensors) a python module; skipped where it is missing
#   needs nvcc             the CUDA compiler, without a GPU
#   needs a GPU            a GPU and a CUDA build (for a slow block that runs on one)
#   needs a CPU-only build no CUDA, no sanitizers: a program compiled by hand against the libraries
#   in a fresh directory   a scratch directory of its own, without the earlier blocks' files
#   without -e             the block shows a failing command on purpose: only its last must succeed
# Three more markers:
#
#   <!-- docs-test: file NAME -->              before any fenced block: save the block as NAME (a
#                                              program a chapter asks the reader to save)
#   <!-- docs-test: same output -->            before a plain ``` block: it must be the last lines
#                                              the command block before it printed
#   <!-- docs-test: setup (why)                hidden commands (a Markdown viewer does not show them)
#   build/bin/fmtrain ... --set train.steps=200  that stand in for a slow block whose results the
#   -->                                        next blocks read, e.g. a short training run
#
# How a block runs: the blocks of one Markdown file run in order, each as `bash -euo pipefail` with
# a timeout (--timeout, default 120 s), in one scratch directory per file. The scratch directory
# looks like the repository root: each top-level entry of the checkout is a symlink to it, and
# build/ (and build-cpu/, build-gpu/, the names chapters use) is a symlink to BUILD_DIR, so
# `build/bin/fmtrain configs/moons.json` works as written and runs/ lands in the scratch directory.
# A `cmake -S ... -B ...` configure line is not run (the build under test is already configured;
# configuring it again, e.g. with -DFM_CUDA=OFF, would change it): it prints a note instead. `ninja
# -C build TARGET` does run, and is a no-op when TARGET is built. stdout and stderr are read
# together. A "$ " transcript runs as typed into a shell (no -e), but each of its commands must exit
# with 0. A block also fails when a test executable it runs says "No test cases matched" (its
# filter names a test case that no longer exists). One line per block: PASS, FAIL (then the block's
# last output lines), SKIPPED (kind: reason); exit code 1 on any FAIL or on a command block without
# a marker, else 0.
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
COMMAND_LANGUAGES = {"sh", "bash", "shell", "console"}
BUILD_DIR_NAMES = ("build", "build-cpu", "build-gpu")
CUDA_BIN = "/usr/local/cuda/bin"
MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*(.*?)\s*(-->)?\s*$")
FENCE = re.compile(r"^(\s*)```\s*([\w+-]*)\s*$")  # indented too: a block inside a list item
# A Catch2 test executable whose filter matches nothing still exits 0: a renamed test case would
# leave the chapter's command running nothing, so this line fails the block.
CATCH_NOTHING_MATCHED = "No test cases matched"

# Defined in every block's shell: configuring is the job of whoever built BUILD_DIR.
SHELL_PRELUDE = r"""
cmake() {
  case " $* " in
    *" -S "*|*" -B "*) echo "docs-test: not run, the build under test is already configured: cmake $*" >&2
                       return 0 ;;
  esac
  command cmake "$@"
}
"""


@dataclass
class Block:
    path: str              # relative to the repository root
    line: int              # 1-based line of the opening fence (or of the setup marker)
    language: str
    text: str              # the block's content
    marker: str | None     # the marker comment's text after "docs-test:", None when there is none
    is_command: bool = False
    commands: str = ""     # the shell script to run
    shown_output: str | None = None  # a transcript's output lines
    transcript: bool = False         # "$ " lines: run as typed into a shell (no -e; see split_transcript)


@dataclass
class Step:
    """One thing to do for a Markdown file, in document order."""
    block: Block
    kind: str              # fast, slow, gpu, skip, setup, file, same-output; unmarked, bad-marker; none
                           # (a block that is no command and has no marker: nothing to do)
    reason: str = ""
    options: list[str] = field(default_factory=list)
    argument: str = ""     # the file name of a "file" step


def is_command_block(language, text):
    if language in COMMAND_LANGUAGES:
        return True
    first = next((l for l in text.splitlines() if l.strip()), "")
    return language == "" and first.startswith("$ ")


def split_transcript(text):
    """A "$ " transcript: the commands (a "> " line continues one that ends in a backslash) and the
    output lines between them. Each command must succeed, as typed into an interactive shell: the
    script checks its exit code after it, so `cmd; echo "rc $?"` may show a failing cmd."""
    commands, output = [], []
    continuing = False
    for line in text.splitlines():
        if line.startswith("$ ") or (continuing and line.startswith("> ")):
            commands.append(line[2:])
            continuing = line.rstrip().endswith("\\")
            if not continuing:
                commands.append('fm_docs_rc=$?; [ "$fm_docs_rc" -eq 0 ] || exit "$fm_docs_rc"')
        else:
            continuing = False
            output.append(line)
    return "\n".join(commands) + "\n", "\n".join(output)


def read_blocks(path):
    """The fenced blocks and setup comments of one Markdown file, in order."""
    lines = (REPO_ROOT / path).read_text(encoding="utf-8").split("\n")
    blocks = []
    i = 0
    while i < len(lines):
        marker = MARKER.match(lines[i])
        if marker and marker.group(1).startswith("setup") and not marker.group(2):
            start = i
            body = []
            i += 1
            while i < len(lines) and lines[i].strip() != "-->":
                body.append(lines[i])
                i += 1
            blocks.append(Block(path, start + 1, "sh", "\n".join(body) + "\n", "setup", True,
                                "\n".join(body) + "\n"))
            i += 1
            continue
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        start = i
        body = []
        i += 1
        indent = len(fence.group(1))
        while i < len(lines) and not lines[i].lstrip().startswith("```"):
            body.append(lines[i][indent:] if lines[i][:indent].isspace() else lines[i])
            i += 1
        i += 1  # the closing fence
        previous = start - 1
        while previous >= 0 and not lines[previous].strip():
            previous -= 1
        marker = MARKER.match(lines[previous]) if previous >= 0 else None
        block = Block(path, start + 1, fence.group(2), "\n".join(body) + "\n",
                      marker.group(1) if marker else None)
        block.is_command = is_command_block(block.language, block.text)
        if block.is_command:
            if block.language == "console" or block.text.lstrip().startswith("$ "):
                block.commands, block.shown_output = split_transcript(block.text)
                block.transcript = True
            else:
                block.commands = block.text
        blocks.append(block)
    return blocks


KINDS = ("fast", "slow", "gpu", "skip")
KNOWN_NEEDS = ("a CPU-only build", "a GPU", "nvcc", "numpy", "torch", "safetensors")
FRESH_DIRECTORY = "in a fresh directory"  # the option for a block that must not see the earlier blocks' files
WITHOUT_E = "without -e"  # the option for a block that shows a failing command on purpose


def is_known_option(option):
    return option in ("same output", FRESH_DIRECTORY, WITHOUT_E) or (option.startswith("needs ") and option[len("needs "):] in KNOWN_NEEDS)


def parse_marker(block):
    """The step a block asks for: its kind, the reason in parentheses, the options after commas. A
    marker with a typo is an error (reported like a missing one), never a silently skipped block."""
    if block.marker is None:
        return Step(block, "unmarked" if block.is_command else "none")
    text = block.marker
    if text.startswith("file ") and not block.is_command:
        return Step(block, "file", argument=text[len("file "):].strip())
    if text == "setup":  # only read_blocks gives this marker: a setup comment's own commands
        return Step(block, "setup")
    if text == "same output" and not block.is_command:
        return Step(block, "same-output")
    reason = ""
    match = re.search(r"\((.*)\)", text)
    if match:
        reason = match.group(1)
        text = text[:match.start()] + text[match.end():]
    words = [w.strip() for w in text.split(",") if w.strip()]
    kind, options = (words[0], words[1:]) if words else ("", [])
    if kind not in KINDS or not block.is_command or not all(is_known_option(o) for o in options):
        return Step(block, "bad-marker", reason=f"not a marker this script knows: '{block.marker}'")
    return Step(block, kind, reason, options)


def build_settings(build_dir):
    cache = {}
    cache_file = build_dir / "CMakeCache.txt"
    if cache_file.exists():
        for line in cache_file.read_text(errors="replace").splitlines():
            match = re.match(r"^(\w+):\w+=(.*)$", line)
            if match:
                cache[match.group(1)] = match.group(2)
    return cache


def is_on(value):
    return value.upper() in ("ON", "1", "TRUE", "YES", "Y")


def gpu_present():
    smi = shutil.which("nvidia-smi")
    if not smi:
        return False
    result = subprocess.run([smi, "-L"], capture_output=True, text=True)
    return result.returncode == 0 and "GPU" in result.stdout


def missing_requirement(options, cache, has_gpu):
    """Why a block's "needs ..." options are not met here (empty when they are)."""
    for need in (o[len("needs "):] for o in options if o.startswith("needs ")):
        if need == "a GPU":
            if not has_gpu:
                return "needs a GPU and a CUDA build; this is not one"
        elif need == "a CPU-only build":
            if any(is_on(cache.get(v, "OFF")) for v in ("FM_CUDA", "FM_SANITIZE", "FM_CUDA_EMULATOR")):
                return "needs a CPU-only build (-DFM_CUDA=OFF, no sanitizers); this one is not"
        elif need == "nvcc":
            if not shutil.which("nvcc") and not Path(CUDA_BIN, "nvcc").exists():
                return "needs nvcc, which is not installed"
        elif subprocess.run([sys.executable, "-c", f"import {need}"], capture_output=True).returncode:
            return f"needs the python module {need}, which cannot be imported"
    return ""


def make_scratch_dir(build_dir):
    """A directory that looks like the repository root, with build/ pointing at the build under test."""
    scratch = Path(tempfile.mkdtemp(prefix="fm_docs_"))
    for entry in REPO_ROOT.iterdir():
        if entry.name in (".git", "runs") or entry.name.startswith("build"):
            continue
        (scratch / entry.name).symlink_to(entry)
    for name in BUILD_DIR_NAMES:
        (scratch / name).symlink_to(build_dir)
    return scratch


def run_commands(block, options, cwd, timeout):
    env = dict(os.environ)
    env.pop("FM_TEST_SINGLE_CASE", None)  # a GPU case skipped by hand says so and goes on (tests/test_util.h)
    if Path(CUDA_BIN).is_dir():  # nvcc is often installed outside PATH (as in tools/bootstrap.sh)
        env["PATH"] = env.get("PATH", "") + ":" + CUDA_BIN
    start = time.monotonic()
    try:
        flags = "-uo" if block.transcript or WITHOUT_E in options else "-euo"
        result = subprocess.run(["bash", flags, "pipefail", "-c", SHELL_PRELUDE + block.commands], cwd=cwd,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, timeout=timeout)
        return result.returncode, result.stdout.decode(errors="replace"), time.monotonic() - start
    except subprocess.TimeoutExpired as expired:
        output = (expired.stdout or b"").decode(errors="replace")
        return None, output, time.monotonic() - start


def normalise(text):
    """Output as lines, trailing spaces and blank lines at either end ignored; the progress line's
    carriage-return redraws keep only their last state, as a terminal shows."""
    lines = [line.split("\r")[-1].rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    notes = "docs-test: not run, the build under test is already configured"
    lines = [line for line in lines if not line.startswith(notes)]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return lines


def same_output(printed, shown):
    """The output shown is what the commands printed last (lines before it, e.g. ninja's, ignored)."""
    printed, shown = normalise(printed), normalise(shown)
    return len(shown) <= len(printed) and printed[len(printed) - len(shown):] == shown


def tail(text, count=25):
    return "\n".join("    | " + line for line in text.rstrip().split("\n")[-count:])


class Runner:
    """Runs the steps of each Markdown file and counts the outcomes."""

    def __init__(self, build_dir, run_slow, timeout, keep):
        self.build_dir = build_dir
        self.cache = build_settings(build_dir)
        self.has_gpu = is_on(self.cache.get("FM_CUDA", "OFF")) and gpu_present()
        self.run_slow = run_slow
        self.timeout = timeout
        self.keep = keep
        self.counts = {"PASS": 0, "FAIL": 0, "SKIPPED": 0, "UNMARKED": 0}

    def report(self, outcome, where, text, output=None):
        print(f"{outcome:<9} {where}  {text}", flush=True)
        if output is not None:
            print(tail(output, 40), flush=True)
        self.counts[outcome] += 1

    def run_file(self, path, steps):
        scratch = make_scratch_dir(self.build_dir)
        failures_before = self.counts["FAIL"]
        last_output = None  # what the last command block printed, for a "same output" block
        for step in steps:
            where = f"{step.block.path}:{step.block.line}"
            if step.kind == "file":
                target = Path(step.argument) if step.argument.startswith("/") else scratch / step.argument
                target.write_text(step.block.text, encoding="utf-8")
            elif step.kind == "same-output":
                if last_output is None:
                    self.report("SKIPPED", where, "(same output: the command block before it did not run)")
                elif same_output(last_output, step.block.text):
                    self.report("PASS", where, "(same output as shown)")
                else:
                    self.report("FAIL", where, "the output shown is not what the commands print; they printed:",
                                last_output)
            else:
                last_output = self.run_command_step(step, where, scratch)
        if self.keep or self.counts["FAIL"] > failures_before:
            print(f"          (scratch directory of {path} kept: {scratch})")
        else:
            shutil.rmtree(scratch, ignore_errors=True)

    def run_command_step(self, step, where, scratch):
        """Runs (or skips) one command block; returns its output when it passed, else None."""
        if step.kind in ("unmarked", "bad-marker"):
            self.report("UNMARKED", where, step.reason or "a command block needs a <!-- docs-test: KIND --> "
                        "comment on the line before it")
            return None
        if step.kind == "setup" and self.run_slow:
            self.report("SKIPPED", where, "(setup: --run-slow runs the slow block it stands in for)")
            return None
        runs = step.kind in ("fast", "setup") or (step.kind == "gpu" and self.has_gpu) \
            or (step.kind == "slow" and self.run_slow)
        if not runs:
            reasons = [step.reason] if step.reason else []
            if step.kind == "gpu":
                reasons.append("no CUDA device in this build")
            self.report("SKIPPED", where, f"({step.kind}: {'; '.join(reasons)})")
            return None
        missing = missing_requirement(step.options, self.cache, self.has_gpu)
        if missing:
            self.report("SKIPPED", where, f"({step.kind}: {missing})")
            return None
        timeout = None if step.kind == "slow" else self.timeout
        fresh = make_scratch_dir(self.build_dir) if FRESH_DIRECTORY in step.options else None
        code, output, seconds = run_commands(step.block, step.options, fresh or scratch, timeout)
        if fresh and not self.keep:
            shutil.rmtree(fresh, ignore_errors=True)
        took = f"({step.kind}, {seconds:.1f} s)"
        unmatched = [line for line in output.splitlines() if line.startswith(CATCH_NOTHING_MATCHED)]
        if code is None:
            self.report("FAIL", where, f"{took} timed out after {timeout:.0f} s; its last output:", output)
        elif code != 0:
            self.report("FAIL", where, f"{took} exit code {code}; its last output:", output)
        elif unmatched:
            self.report("FAIL", where, f"{took} a test filter matches no test case: {unmatched[0]}")
        elif "same output" in step.options and not same_output(output, step.block.shown_output or ""):
            self.report("FAIL", where, f"{took} the output differs from the one shown; it printed:", output)
        else:
            self.report("PASS", where, took)
            return output
        return None


def main():
    parser = argparse.ArgumentParser(description="Run the command blocks of docs/ and README.md.")
    parser.add_argument("build_dir", type=Path, help="the build under test (its bin/ has fmtrain, ...)")
    parser.add_argument("filters", nargs="*", help="only Markdown files whose path contains one of these")
    parser.add_argument("--list", action="store_true", help="list the blocks and their kinds, run nothing")
    parser.add_argument("--run-slow", action="store_true", help="run the slow blocks too")
    parser.add_argument("--timeout", type=float, default=120, help="seconds per fast block (default 120)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directories")
    args = parser.parse_intermixed_args()

    build_dir = args.build_dir.resolve()
    if not (build_dir / "bin").is_dir():
        print(f"docs_commands: {build_dir} has no bin/ directory: not a build", file=sys.stderr)
        return 2
    markdown = sorted(p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / "docs").rglob("*.md"))
    markdown.append("README.md")
    if args.filters:
        markdown = [m for m in markdown if any(f in m for f in args.filters)]

    runner = Runner(build_dir, args.run_slow, args.timeout, args.keep)
    kinds = dict.fromkeys(KINDS, 0)
    start = time.monotonic()
    for path in markdown:
        steps = [s for s in map(parse_marker, read_blocks(path)) if s.kind != "none"]
        for step in steps:
            kinds[step.kind] = kinds.get(step.kind, 0) + 1
        if args.list:
            for step in steps:
                detail = ", ".join(([step.reason] if step.reason else []) + step.options + [step.argument])
                print(f"{step.kind:<11} {step.block.path}:{step.block.line}  {detail.strip(', ')}")
        elif steps:
            runner.run_file(path, steps)

    print(f"docs_commands: blocks by kind: {kinds['fast']} fast, {kinds['slow']} slow, {kinds['gpu']} gpu, "
          f"{kinds['skip']} skip")
    if args.list:
        return 0
    counts = runner.counts
    print(f"docs_commands: {counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIPPED']} skipped, "
          f"{counts['UNMARKED']} unmarked in {time.monotonic() - start:.1f} s")
    return 1 if counts["FAIL"] or counts["UNMARKED"] else 0


if __name__ == "__main__":
    sys.exit(main())
