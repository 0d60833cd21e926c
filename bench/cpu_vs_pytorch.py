#!/usr/bin/env python3
"""bench/cpu_vs_pytorch.py — CPU speed of the engine against PyTorch on the same work (issue 13).

  python3 bench/cpu_vs_pytorch.py [--install] [--python PATH] [--fmtrain PATH] [--fmbench PATH]
                                  [--repeats 3] [--only moons|unet|ops|kernels] [--steps N] [--csv FILE]

Not part of CI and not a CTest: it needs PyTorch, which --install puts into a throw-away virtual
environment (python3 -m venv VENV && VENV/bin/pip install torch; VENV is /tmp/v unless --venv says
otherwise). Without PyTorch and without --install it says so and exits 0.

Every measurement is a fresh process on each side, engine and PyTorch alternating (E, P, E, P, ...),
with OMP_NUM_THREADS=k for both and torch.set_num_threads(k) in PyTorch's. The table shows the median
of --repeats runs; the last column is engine speed / PyTorch speed (above 1: the engine is faster).

The same work on both sides. The engine run is `fmtrain CONFIG --quiet` with these overrides:
device=cpu, train.steps (the config's, or --steps), train.checkpoint_every=train.steps and
train.sample_every=0 (no checkpoint or sample picture inside the loop), sample.solver=euler,
sample.steps and sample.n of the table's row. The PyTorch run (bench/cpu_vs_pytorch_models.py) reads
the resolved config.json that this fmtrain run wrote, so model, batch, optimiser (Adam, betas, eps),
warm-up + cosine learning rate, EMA decay, gradient clipping, time sampler, metrics cadence and
sampler come from one place. Its models: the MLP of nn/mlp.cpp (written there) and the U-Net of
bench/unet_pytorch.py (which mirrors nn/unet.cpp; attention with need_weights=False). Both parameter
counts are printed; the script refuses to report when they differ.

What is timed:
  training   engine: `elapsed_s` of the last metrics.jsonl line (step N), the clock fmtrain starts just
             before step 1 (tools/train_run.cpp TrainingLoop); PyTorch: perf_counter over the same loop.
             Inside: every step's data batch, t, noise, loss, backward, gradient norm (+ clipping), LR,
             optimiser step, EMA update, loss.item(), loss by t-bin, and a metrics line every
             train.log_every steps. Outside on both sides: process start, model build, data loading,
             checkpoints, sampling, the final evaluation. Rate = steps / seconds (moons) or
             batch · steps / seconds (U-Net images/s).
  sampling   engine: `sampling_seconds` of summary.json (tools/run_setup.cpp generate_samples, called by
             fmtrain after the last step: noise in chunks of 512, the Euler solve, EMA weights swapped
             in before the clock); PyTorch: the same chunks, steps and EMA weights under no_grad. Taken
             from the training runs with the larger thread count (2 by default).

  per-op     the cost of one tiny op, `x + b` on [8]-element float tensors, 1 thread: engine: `fmbench
             cpu-ops --filter "x + b" --csv` (bench/cpu_ops.cpp), the [8]+[8] rows; PyTorch:
             bench/cpu_ops_pytorch.py (the same op and modes from Python, as a PyTorch user calls it). Modes:
             without grad, recording the backward node, and that node's backward. Lower is faster.

  kernels    only with --only kernels: every row of the CPU kernel lab (`fmbench cpu-kernels`: conv2d's three
             passes, attention, the GEMM shapes, GroupNorm + SiLU of the small U-Net) against the same call in
             PyTorch (bench/cpu_kernels_pytorch.py, which rebuilds each row's inputs from the lab's CSV), at the
             first --threads count; GFLOP/s of each side and its share of the lab's measured FMA peak (GB/s and
             the share of a copy of as many bytes for GroupNorm + SiLU). Each side's best
             of --repeats processes (each already its fastest round), not the median.

Default step counts: moons the config's train.steps (3000); the U-Net 200 steps instead of the
config's 800 (throughput does not depend on the learning rate; 200 steps keep a 3-repeat run near ten
minutes on two cores). --steps N sets both, for a quick functional run; there train.warmup_steps is
lowered to N // 2 when it is not below N (a cosine schedule needs warm-up < steps).
"""
import argparse
import csv
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(REPO, "bench", "cpu_vs_pytorch_models.py")
OPS_WORKER = os.path.join(REPO, "bench", "cpu_ops_pytorch.py")
KERNELS_WORKER = os.path.join(REPO, "bench", "cpu_kernels_pytorch.py")
# fmbench cpu-ops' mode names → cpu_ops_pytorch.py's
OP_MODES = {"no grad": "add", "recording": "add_recording", "backward": "add_backward"}

# One entry per training setup; a table row is one of its numbers.
SETUPS = {
    "moons": {"config": "configs/moons.json", "steps": None, "sample_n": 2000, "sample_steps": 100},
    "unet": {"config": "configs/fashion_mnist_cpu.json", "steps": 200, "sample_n": 16, "sample_steps": 50},
}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--install", action="store_true", help="create the venv and pip install torch into it")
    parser.add_argument("--venv", default="/tmp/v", help="where --install puts the venv (default /tmp/v)")
    parser.add_argument("--python", help="the Python that has torch (default: VENV/bin/python if it exists)")
    parser.add_argument("--fmtrain", default=os.path.join(REPO, "build-cpu", "bin", "fmtrain"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fmbench", help="fmbench for the per-op rows (default: next to --fmtrain)")
    parser.add_argument("--only", choices=sorted(SETUPS) + ["ops", "kernels"])
    parser.add_argument("--steps", type=int, help="training steps for every run (a quick functional check)")
    parser.add_argument("--threads", default="2,1",
                        help="moons thread counts, first one also for the U-Net and sampling (default 2,1)")
    parser.add_argument("--csv", help="also write every row, with each repeat's value, to this CSV file")
    parser.add_argument("--keep", help="keep the run directories under this folder (default: a temp folder, removed)")
    args = parser.parse_args()
    if args.repeats < 1 or (args.steps is not None and args.steps < 2):
        parser.error("--repeats must be at least 1 and --steps at least 2")
    args.thread_counts = [int(k) for k in args.threads.split(",")]
    if not args.thread_counts or min(args.thread_counts) < 1:
        parser.error("--threads: a comma-separated list of positive integers")
    return args


def run(command, threads=None, capture=True):
    env = dict(os.environ)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    result = subprocess.run(command, env=env, cwd=REPO, text=True, capture_output=capture)
    if result.returncode != 0:
        detail = (result.stderr or "").strip().splitlines()[-5:] if capture else []
        raise SystemExit(f"cpu_vs_pytorch.py: failed ({result.returncode}): {' '.join(command)}\n" + "\n".join(detail))
    return result.stdout if capture else ""


def find_torch(args):
    """The Python with torch and its version, installing it first when asked; None when there is none."""
    python = args.python or (os.path.join(args.venv, "bin", "python") if os.path.exists(
        os.path.join(args.venv, "bin", "python")) else sys.executable)
    probe = [python, "-c", "import torch; print(torch.__version__)"]
    found = subprocess.run(probe, capture_output=True, text=True)
    if found.returncode != 0 and args.install:
        print(f"installing PyTorch into {args.venv} (a few GB; not part of CI) ...", flush=True)
        run([sys.executable, "-m", "venv", args.venv], capture=False)
        run([os.path.join(args.venv, "bin", "pip"), "install", "torch"], capture=False)
        python = os.path.join(args.venv, "bin", "python")
        found = subprocess.run([python] + probe[1:], capture_output=True, text=True)
    if found.returncode != 0:
        return None, None
    return python, found.stdout.strip()


def machine_facts(torch_version, args):
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
    except OSError:
        pass
    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                           text=True)
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "pytorch": torch_version,
        "commit": (commit.stdout.strip() or "?") + (" (with uncommitted changes)" if dirty.stdout.strip() else ""),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "fmtrain": os.path.relpath(args.fmtrain, REPO) + ", built " + datetime.datetime.fromtimestamp(
            os.path.getmtime(args.fmtrain), datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def overrides(setup, steps):
    """The --set list of one engine run."""
    with open(os.path.join(REPO, setup["config"])) as f:
        train = json.load(f).get("train", {})
    sets = ["device=\"cpu\"", f"train.steps={steps}", f"train.checkpoint_every={steps}", "train.sample_every=0",
            "sample.solver=\"euler\"", f"sample.n={setup['sample_n']}", f"sample.steps={setup['sample_steps']}"]
    if train.get("warmup_steps", 0) >= steps:
        sets.append(f"train.warmup_steps={steps // 2}")
    return sets


def engine_run(args, setup, steps, threads, run_dir):
    command = [args.fmtrain, os.path.join(REPO, setup["config"]), "--quiet", "--out", run_dir]
    for item in overrides(setup, steps):
        command += ["--set", item]
    run(command, threads)
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        last = [json.loads(line) for line in f if line.strip() and "event" not in line][-1]
    with open(os.path.join(run_dir, "summary.json")) as f:
        summary = json.load(f)
    with open(os.path.join(run_dir, "config.json")) as f:
        batch = json.load(f)["train"]["batch_size"]
    assert last["step"] == steps, f"the last metrics line is step {last['step']}, expected {steps}"
    return {"parameters": summary["parameters"], "train_seconds": last["elapsed_s"],
            "sampling_seconds": summary["sampling_seconds"], "loss_avg": last["loss_avg"], "batch": batch}


def pytorch_run(args, python, threads, run_dir):
    config = os.path.join(run_dir, "config.json")  # the resolved config of the engine run just before
    out = run([python, WORKER, "--config", config, "--threads", str(threads),
               "--metrics", os.path.join(run_dir, "pytorch_metrics.jsonl")], threads)
    return json.loads(out.strip().splitlines()[-1])


def measure(args, python, name, threads, work_dir):
    """--repeats alternating engine/PyTorch runs of one setup at one thread count."""
    setup = SETUPS[name]
    steps = args.steps or setup["steps"]
    if steps is None:
        with open(os.path.join(REPO, setup["config"])) as f:
            steps = json.load(f)["train"]["steps"]
    results = {"engine": [], "pytorch": [], "steps": steps}
    for repeat in range(args.repeats):
        run_dir = os.path.join(work_dir, f"{name}_t{threads}_r{repeat}")
        engine = engine_run(args, setup, steps, threads, run_dir)
        torch_result = pytorch_run(args, python, threads, run_dir)
        if engine["parameters"] != torch_result["parameters"]:
            raise SystemExit(f"cpu_vs_pytorch.py: {name}: the engine's model has {engine['parameters']} parameters, "
                             f"PyTorch's {torch_result['parameters']}; not the same model, nothing reported")
        torch_result["batch"] = engine["batch"]
        results["engine"].append(engine)
        results["pytorch"].append(torch_result)
        print(f"  {name}, {threads} thread(s), repeat {repeat + 1}/{args.repeats}: "
              f"engine {engine['train_seconds']:.2f} s train + {engine['sampling_seconds']:.3f} s sampling "
              f"(last loss_avg {engine['loss_avg']:.4f}); PyTorch {torch_result['train_seconds']:.2f} s + "
              f"{torch_result['sampling_seconds']:.3f} s (last loss_avg {torch_result['loss_avg']:.4f})", flush=True)
    return results


def row(label, unit, engine_values, torch_values, higher_is_faster, aggregate=statistics.median):
    engine, torch_median = aggregate(engine_values), aggregate(torch_values)
    speed = engine / torch_median if higher_is_faster else torch_median / engine
    return {"work": label, "unit": unit, "engine": engine, "pytorch": torch_median, "speed_ratio": speed,
            "engine_values": engine_values, "pytorch_values": torch_values}


def rows_for(name, by_threads, thread_counts):
    """The table's rows of one setup."""
    rows = []
    first = by_threads[thread_counts[0]]
    steps = first["steps"]
    if name == "moons":
        for k in thread_counts:
            r = by_threads[k]
            rate = lambda side: [steps / x["train_seconds"] for x in r[side]]  # noqa: E731
            label = f"moons (configs/moons.json), training steps/s, {k} thread{'s' if k > 1 else ''}"
            rows.append(row(label, "steps/s", rate("engine"), rate("pytorch"), True))
        sample = SETUPS["moons"]
        label = f"moons sampling, Euler {sample['sample_steps']} steps × {sample['sample_n']:,} points (seconds)"
    else:
        rate = lambda side: [steps * x["batch"] / x["train_seconds"] for x in first[side]]  # noqa: E731
        batch = first["engine"][0]["batch"]
        rows.append(row(f"small U-Net (configs/fashion_mnist_cpu.json), images/s, batch {batch}, "
                        f"{thread_counts[0]} threads", "images/s", rate("engine"), rate("pytorch"), True))
        sample = SETUPS["unet"]
        label = f"small U-Net sampling, {sample['sample_n']} images × {sample['sample_steps']} Euler steps (seconds)"
    seconds = lambda side: [x["sampling_seconds"] for x in first[side]]  # noqa: E731
    rows.append(row(label, "s", seconds("engine"), seconds("pytorch"), False))
    return rows


def measure_ops(args, python, work_dir):
    """The per-op rows: fmbench cpu-ops and cpu_ops_pytorch.py alternating, --repeats times each."""
    fmbench = args.fmbench or os.path.join(os.path.dirname(args.fmtrain), "fmbench")
    if not os.access(fmbench, os.X_OK):
        print(f"  per-op rows skipped: no fmbench at {fmbench} (build the fmbench target or pass --fmbench)")
        return []
    engine = {mode: [] for mode in OP_MODES}
    torch_ns = {mode: [] for mode in OP_MODES}
    for repeat in range(args.repeats):
        csv_path = os.path.join(work_dir, f"ops_r{repeat}.csv")
        run([fmbench, "cpu-ops", "--filter", "x + b", "--csv", csv_path], 1)
        with open(csv_path) as f:
            for line in csv.DictReader(f):
                if line["shapes"] == "[8]+[8]" and line["mode"] in OP_MODES:
                    engine[line["mode"]].append(float(line["median_ns"]))
        measured = json.loads(run([python, OPS_WORKER, "--threads", "1"], 1).strip().splitlines()[-1])
        for mode, key in OP_MODES.items():
            torch_ns[mode].append(measured["ops"][key])
        print(f"  per-op, repeat {repeat + 1}/{args.repeats}: engine "
              + ", ".join(f"{m} {engine[m][-1]:.0f} ns" for m in OP_MODES) + "; PyTorch "
              + ", ".join(f"{m} {torch_ns[m][-1]:.0f} ns" for m in OP_MODES), flush=True)
    return [row(f"x + b, [8] float32, {mode}, 1 thread (ns per op)", "ns", engine[mode], torch_ns[mode], False)
            for mode in OP_MODES]


def measure_kernels(args, python, work_dir):
    """The kernel rows: fmbench cpu-kernels and cpu_kernels_pytorch.py alternating, --repeats times each."""
    fmbench = args.fmbench or os.path.join(os.path.dirname(args.fmtrain), "fmbench")
    if not os.access(fmbench, os.X_OK):
        raise SystemExit(f"cpu_vs_pytorch.py: no fmbench at {fmbench} (build the fmbench target or pass --fmbench)")
    threads = args.thread_counts[0]
    engine, torch_seconds, lab_rows, peaks, copies = {}, {}, {}, [], {}
    for repeat in range(args.repeats):
        csv_path = os.path.join(work_dir, f"kernels_r{repeat}.csv")
        run([fmbench, "cpu-kernels", "--csv", csv_path], threads)
        with open(csv_path) as f:
            for line in csv.DictReader(f):
                key = f"{line['op']}|{line['shape']}|{line['pass']}"
                lab_rows[key] = line
                engine.setdefault(key, []).append(float(line["seconds"]))
                copies.setdefault(key, []).append(float(line["copy_gbps"]))
                peak = float(line["peak_gflops"])
        peaks.append(peak)
        measured = json.loads(run([python, KERNELS_WORKER, "--lab-csv", csv_path, "--threads", str(threads)],
                                  threads).strip().splitlines()[-1])
        for key, seconds in measured["seconds"].items():
            torch_seconds.setdefault(key, []).append(seconds)
        print(f"  kernels, repeat {repeat + 1}/{args.repeats}: {len(measured['seconds'])} rows each side, "
              f"peak {peak:.1f} GFLOP/s", flush=True)
    peak = statistics.median(peaks)
    rows = []
    for key, line in lab_rows.items():
        # A row that counts operations in GFLOP/s against the FMA peak; one that counts bytes (bytes > 0)
        # in GB/s against a copy of as many bytes.
        counts_bytes = float(line["bytes"]) > 0
        amount = float(line["bytes"] if counts_bytes else line["flops"])
        rate = lambda values: [amount / s * 1e-9 for s in values]  # noqa: E731
        label = f"{line['op']} {line['shape']} {line['pass']}, {threads} thread{'s' if threads > 1 else ''}"
        # The best of the repeats, not the median: each repeat is already its process's fastest round,
        # and between processes the parallel GEMM rows are bimodal on a 2-vCPU VM (bench/README.md,
        # "The kernel lab on the CPU"); the best is each side's undisturbed speed.
        r = row(label, "GB/s" if counts_bytes else "GFLOP/s", rate(engine[key]), rate(torch_seconds[key]), True,
                aggregate=max)
        r["peak"] = statistics.median(copies[key]) if counts_bytes else peak
        rows.append(r)
    return rows


def print_table(rows, facts, args, steps_by_setup, parameters):
    print()
    print(f"machine: {facts['cpu']}, {facts['cores']} cores | PyTorch {facts['pytorch']} | checkout "
          f"{facts['commit']} | {facts['fmtrain']} | {facts['date']}")
    trained = ("; training steps: " + ", ".join(f"{k} {v}" for k, v in steps_by_setup.items())
               + "; parameters: " + ", ".join(f"{k} {v}" for k, v in parameters.items()) + " (both sides)"
               if steps_by_setup else "")
    kernels_only = args.only == "kernels"
    print(f"{'best' if kernels_only else 'medians'} of {args.repeats} runs each side, alternating{trained}")
    print()
    print("| work | this engine | PyTorch CPU | engine / PyTorch speed |")
    print("|---|---|---|---|")
    for r in rows:
        if r["unit"] in ("GFLOP/s", "GB/s"):  # a kernel row: with each side's share of the measured ceiling
            ceiling = "peak" if r["unit"] == "GFLOP/s" else "copy"
            share = lambda v: f"{v:.1f} {r['unit']} ({100 * v / r['peak']:.0f}% of {ceiling})"  # noqa: E731
            print(f"| {r['work']} | {share(r['engine'])} | {share(r['pytorch'])} | {r['speed_ratio']:.2f}× |")
            continue
        digits = 3 if r["unit"] == "s" else 0
        suffix = {"s": " s", "ns": " ns"}.get(r["unit"], "")
        fmt = lambda v: f"{v:.{digits}f}{suffix}"  # noqa: E731
        print(f"| {r['work']} | {fmt(r['engine'])} | {fmt(r['pytorch'])} | {r['speed_ratio']:.2f}× |")


def write_csv(path, rows, facts):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        # engine/pytorch: the median of the repeats, or for the kernel rows (--only kernels) the best.
        writer.writerow(["work", "unit", "engine", "pytorch", "engine_over_pytorch_speed",
                         "engine_values", "pytorch_values", "cpu", "cores", "pytorch_version", "commit", "date"])
        for r in rows:
            writer.writerow([r["work"], r["unit"], f"{r['engine']:.6g}", f"{r['pytorch']:.6g}",
                             f"{r['speed_ratio']:.4f}", " ".join(f"{v:.6g}" for v in r["engine_values"]),
                             " ".join(f"{v:.6g}" for v in r["pytorch_values"]), facts["cpu"], facts["cores"],
                             facts["pytorch"], facts["commit"], facts["date"]])


def main():
    args = parse_args()
    python, torch_version = find_torch(args)
    if python is None:
        print("cpu_vs_pytorch.py: PyTorch is not installed for this Python (nor in "
              f"{args.venv}); rerun with --install, or --python PATH to a Python that has it. Nothing measured.")
        return 0
    if not os.access(args.fmtrain, os.X_OK):
        raise SystemExit(f"cpu_vs_pytorch.py: {args.fmtrain}: no fmtrain there; build it "
                         "(cmake --build BUILD --target fmtrain) or pass --fmtrain PATH")
    facts = machine_facts(torch_version, args)
    names = [args.only] if args.only in SETUPS else ([] if args.only in ("ops", "kernels") else list(SETUPS))
    work_dir = args.keep or tempfile.mkdtemp(prefix="cpu_vs_pytorch_")
    os.makedirs(work_dir, exist_ok=True)
    rows, steps_by_setup, parameters = [], {}, {}
    try:
        for name in names:
            counts = args.thread_counts if name == "moons" else args.thread_counts[:1]
            by_threads = {k: measure(args, python, name, k, work_dir) for k in counts}
            steps_by_setup[name] = by_threads[counts[0]]["steps"]
            parameters[name] = by_threads[counts[0]]["engine"][0]["parameters"]
            rows += rows_for(name, by_threads, args.thread_counts)
        if args.only in (None, "ops"):
            rows += measure_ops(args, python, work_dir)
        if args.only == "kernels":
            rows += measure_kernels(args, python, work_dir)
    finally:
        if not args.keep:
            shutil.rmtree(work_dir, ignore_errors=True)
    print_table(rows, facts, args, steps_by_setup, parameters)
    if args.csv:
        write_csv(args.csv, rows, facts)
        print(f"\nCSV: {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
