#!/usr/bin/env python3
"""bench/cpu_kernels_pytorch.py — the rows of `fmbench cpu-kernels` timed in PyTorch on the CPU.

  python bench/cpu_kernels_pytorch.py --lab-csv FILE [--threads K] [--rounds R]

Reads the CSV that `fmbench cpu-kernels --csv FILE` wrote (its `params` column names each row's sizes,
so the shapes live in one place, bench/cpu/*_lab.cpp) and times the same call in PyTorch, the library
a CPU user would otherwise run (its convolutions go to oneDNN, its matrix products to MKL or oneDNN):
  conv2d forward      torch.nn.functional.conv2d (no bias, as the lab's row)
  conv2d input-grad   torch.ops.aten.convolution_backward with output_mask [True, False, False]
  conv2d weight-grad  the same with [False, True, False] (what autograd calls for each gradient)
  attention forward   torch.nn.functional.scaled_dot_product_attention on q, k, v that require grad
                      (training's forward, which keeps what the backward needs)
  attention backward  torch.autograd.grad of that output for q, k, v (its backward kernel)
  gemm nn/nt/tn       torch.mm into a preallocated output, transposed operands as views
  groupnorm_silu      forward: F.silu(F.group_norm(x, G, γ, β)) on x, γ, β that require grad (PyTorch
                      has no fused GroupNorm + SiLU on the CPU: two kernels); backward:
                      torch.autograd.grad of that output for x, γ, β
Timing as the lab's (bench/cpu/kernel_lab.cpp): one untimed call, then --rounds rounds of calls lasting
at least 2 ms each; the fastest round's seconds per call. torch.set_num_threads(K).
Prints one JSON line last: {"torch": version, "threads": K, "seconds": {"op|shape|pass": s, ...}}.
Run by bench/cpu_vs_pytorch.py --only kernels, alternating with the lab; not part of CI (needs torch).
"""
import argparse
import csv
import json
import math
import sys
import time

import torch
import torch.nn.functional as F

SECONDS_PER_ROUND = 0.002


def fastest_call(call, rounds):
    start = time.perf_counter()
    call()  # warm-up, and the calibration
    first = time.perf_counter() - start
    calls = int(min(max(SECONDS_PER_ROUND / max(first, 1e-9), 1), 100000))
    best = math.inf
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def conv_call(p, which):
    n, cin, size, cout, k, s, pad = (p[key] for key in ("batch", "in_channels", "size", "out_channels", "kernel",
                                                         "stride", "pad"))
    x = torch.randn(n, cin, size, size)
    w = torch.randn(cout, cin, k, k)
    out = (size + 2 * pad - k) // s + 1
    dy = torch.randn(n, cout, out, out)
    if which == "forward":
        return lambda: F.conv2d(x, w, None, s, pad)
    mask = [True, False, False] if which == "input-grad" else [False, True, False]
    return lambda: torch.ops.aten.convolution_backward(dy, x, w, None, [s, s], [pad, pad], [1, 1], False, [0, 0], 1,
                                                       mask)


def attention_call(p, which):
    shape = (p["batch"], p["heads"], p["tokens"], p["head_dim"])
    q, k, v = (torch.randn(shape, requires_grad=True) for _ in range(3))
    if which == "forward":
        return lambda: F.scaled_dot_product_attention(q, k, v)
    out = F.scaled_dot_product_attention(q, k, v)
    dout = torch.randn(shape)
    return lambda: torch.autograd.grad(out, (q, k, v), dout, retain_graph=True)


def gemm_call(p):
    m, n, k = p["M"], p["N"], p["K"]
    a = torch.randn(k, m).t() if p["trans_a"] else torch.randn(m, k)  # op(A) is M×K either way
    b = torch.randn(n, k).t() if p["trans_b"] else torch.randn(k, n)
    c = torch.empty(m, n)
    return lambda: torch.mm(a, b, out=c)


def group_norm_silu_call(p, which):
    x = torch.randn(p["batch"], p["channels"], p["size"], p["size"], requires_grad=True)
    gamma, beta = (torch.randn(p["channels"], requires_grad=True) for _ in range(2))
    forward = lambda: F.silu(F.group_norm(x, p["groups"], gamma, beta, 1e-5))  # noqa: E731
    if which == "forward":
        return forward
    out = forward()
    dout = torch.randn(out.shape)
    return lambda: torch.autograd.grad(out, (x, gamma, beta), dout, retain_graph=True)


def make_call(row):
    params = {key: int(value) for key, value in (item.split("=") for item in row["params"].split(";"))}
    if row["op"] == "conv2d":
        return conv_call(params, row["pass"])
    if row["op"] == "attention":
        return attention_call(params, row["pass"])
    if row["op"] == "gemm":
        return gemm_call(params)
    if row["op"] == "groupnorm_silu":
        return group_norm_silu_call(params, row["pass"])
    raise SystemExit(f"cpu_kernels_pytorch.py: no PyTorch call for op \"{row['op']}\" (a lab row this script "
                     "does not know; add it here)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab-csv", required=True, help="the CSV of fmbench cpu-kernels --csv")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    if args.threads < 1 or args.rounds < 1:
        parser.error("--threads and --rounds must be at least 1")
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    with open(args.lab_csv) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise SystemExit(f"cpu_kernels_pytorch.py: {args.lab_csv}: no rows")
    seconds = {}
    for row in rows:
        key = f"{row['op']}|{row['shape']}|{row['pass']}"
        seconds[key] = fastest_call(make_call(row), args.rounds)
    print(json.dumps({"torch": torch.__version__, "threads": args.threads, "seconds": seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
