#!/usr/bin/env python3
"""bench/cpu_ops_pytorch.py — PyTorch's side of `fmbench cpu-ops`: the cost of one tiny op on the CPU
(dispatch, output allocation, autograd recording), for bench/cpu_vs_pytorch.py's per-op rows.

  PYTHON bench/cpu_ops_pytorch.py [--threads 1] [--repeats 7] [--iterations 20000]

Prints one JSON object: {"torch": version, "ops": {mode: nanoseconds per op}} where each mode is timed
as fmbench cpu-ops times the engine's:
  add            y = x + b on [8]-element float32 tensors, no gradient anywhere (torch.no_grad()).
  add_recording  the same with x requiring a gradient: the op also records its backward node.
  add_backward   the backward of the add's node alone: (forward + backward of sum(x + b)) minus
                 (forward + backward of sum(x)) minus add_recording.
The median over --repeats of the mean over --iterations calls.
"""
import argparse
import json
import statistics
import time

import torch


def per_call_ns(fn, iterations, repeats):
    for _ in range(iterations // 10):  # warm-up: caches, allocator, lazy initialisation
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        for _ in range(iterations):
            fn()
        samples.append((time.perf_counter_ns() - start) / iterations)
    return statistics.median(samples)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--iterations", type=int, default=20000)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    x = torch.randn(8)
    b = torch.randn(8)
    x_grad = torch.randn(8, requires_grad=True)

    def add_recording():
        return x_grad + b

    def sum_backward_with_add():
        (x_grad + b).sum().backward()

    def sum_backward_alone():
        x_grad.sum().backward()

    ops = {}
    # The no-grad mode is set once around the loop, as the engine's NoGradGuard is in fmbench cpu-ops.
    with torch.no_grad():
        ops["add"] = per_call_ns(lambda: x + b, args.iterations, args.repeats)
    ops["add_recording"] = per_call_ns(add_recording, args.iterations, args.repeats)
    with_add = per_call_ns(sum_backward_with_add, args.iterations // 4, args.repeats)
    alone = per_call_ns(sum_backward_alone, args.iterations // 4, args.repeats)
    recording = ops["add_recording"]
    # (sum(x+b) forward+backward) − (sum(x) forward+backward) = the add's forward (recording) + its backward.
    ops["add_backward"] = max(0.0, with_add - alone - recording)
    print(json.dumps({"torch": torch.__version__, "threads": args.threads, "ops": ops}))


if __name__ == "__main__":
    main()
