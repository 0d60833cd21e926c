#!/usr/bin/env python3
"""bench/cpu_vs_pytorch_models.py — the PyTorch side of bench/cpu_vs_pytorch.py: one training run plus the
final sampling, written to do what `fmtrain` does for the same resolved config, timed the same way.

  PYTHON bench/cpu_vs_pytorch_models.py --config RUN_DIR/config.json --threads K --metrics FILE

RUN_DIR/config.json is the resolved config that fmtrain wrote for the engine run just before, so every
number (model, batch, optimiser, learning-rate schedule, EMA, clipping, logging cadence, sampling) is
taken from the same place on both sides. The last line on stdout is one JSON object: parameters,
train_seconds, sampling_seconds, last loss_avg, torch version.

What is timed, as fmtrain times it (tools/train_run.cpp, tools/run_setup.cpp):
  train_seconds    from just before step 1 to the statistics of step N: per step the data batch, t, x0,
                   the CondOT loss, backward, the global gradient norm (one host read; gradients scaled
                   only when train.grad_clip > 0 and the norm exceeds it), the scheduled learning rate,
                   the optimiser step, the EMA update, loss.item() and the loss by 5 t-bins; a JSON
                   metrics line appended (one write call) every train.log_every steps and at step N.
                   Model building, data loading, checkpoints and sampling are outside, as in fmtrain
                   (the driver turns fmtrain's in-loop checkpoints and sample pictures off).
  sampling_seconds sample.n noise draws in chunks of 512 (run_setup.h's generate_samples), the fixed-step
                   Euler solve of sample.steps steps from t = 0 to 1, EMA weights (put in place before
                   the clock starts, as ScopedEMAWeights does), under torch.no_grad() in eval mode.
"""
import argparse
import gzip
import json
import math
import os
import struct
import sys
import time

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from unet_pytorch import UNet, get_time_embedding  # noqa: E402  (the U-Net that mirrors nn/unet.cpp)

SAMPLE_CHUNK = 512      # tools/run_setup.h: generate_samples' default chunk
LOSS_BINS = 5           # flow/trainer.h: TrainerOptions::loss_bins
MOONS_DEFAULT_NOISE = 0.05  # flow/datasets2d.h: MoonsDistribution's default


# ---- models --------------------------------------------------------------------------------------------

ACTIVATIONS = {"gelu": lambda: nn.GELU(approximate="none"), "silu": nn.SiLU, "relu": nn.ReLU, "tanh": nn.Tanh}


class VelocityMLP(nn.Module):
    """nn/mlp.cpp: concat(x, time feature) -> hidden_layers x (Linear, activation) -> Linear to data_dim.
    The time feature is the raw column t ("raw") or the sinusoid of time_scale·t ("sinusoidal")."""

    def __init__(self, model):
        super().__init__()
        self.data_dim, self.time_input = model["data_dim"], model["time_input"]
        self.time_embedding_dim, self.time_scale = model["time_embedding_dim"], model["time_scale"]
        width = self.data_dim + (1 if self.time_input == "raw" else self.time_embedding_dim)
        layers = []
        for _ in range(model["hidden_layers"]):
            layers += [nn.Linear(width, model["hidden_width"]), ACTIVATIONS[model["activation"]]()]
            width = model["hidden_width"]
        layers.append(nn.Linear(width, self.data_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x, t):
        if self.time_input == "raw":
            time_features = t.reshape(x.shape[0], 1)
        else:
            time_features = get_time_embedding(t * self.time_scale, self.time_embedding_dim)
        return self.net(torch.cat([x, time_features], dim=1))


def build_model(model):
    if model["type"] == "mlp":
        return VelocityMLP(model)
    if model.get("time_scale", 1.0) != 1.0 or model.get("out_channels", 0) not in (0, model["in_channels"]):
        raise SystemExit("cpu_vs_pytorch_models.py: this U-Net config (time_scale / out_channels) is not mirrored")
    return UNet(im_channels=model["in_channels"], down_channels=tuple(model["down_channels"]),
                mid_channels=tuple(model["mid_channels"]), t_emb_dim=model["time_emb_dim"],
                down_sample=tuple(model["down_sample"]), attend=tuple(model["attention"]),
                num_heads=model["num_heads"], groups=model["groups"], final_channels=model["final_channels"])


# ---- data (flow/datasets2d.cpp, flow/training_data.cpp) ---------------------------------------------------

class Moons:
    """Even rows on the outer moon, odd rows on the inner one, N(0, noise²) per coordinate, then
    (x − 0.5)·2, (y − 0.25)·2: MoonsDistribution with normalize = true."""

    def __init__(self, noise):
        self.noise = MOONS_DEFAULT_NOISE if noise is None else noise

    def next_batch(self, n):
        theta = math.pi * torch.rand(n)
        outer = (torch.arange(n) % 2) == 0
        x = torch.where(outer, torch.cos(theta), 1.0 - torch.cos(theta))
        y = torch.where(outer, torch.sin(theta), 0.5 - torch.sin(theta))
        points = torch.stack([x, y], dim=1) + self.noise * torch.randn(n, 2)
        return (points - torch.tensor([0.5, 0.25])) * 2.0


class ImageEpochs:
    """IDX images scaled to [-1, 1]; a fresh shuffle whenever the next batch would run past the end."""

    def __init__(self, path, limit):
        with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as f:
            raw = f.read()
        magic, count, rows, cols = struct.unpack(">IIII", raw[:16])
        if magic != 2051:
            raise SystemExit(f"cpu_vs_pytorch_models.py: {path} is not an IDX image file")
        count = min(limit, count) if limit > 0 else count
        pixels = torch.frombuffer(bytearray(raw[16:16 + count * rows * cols]), dtype=torch.uint8)
        self.images = (pixels.float() / 127.5 - 1.0).reshape(count, 1, rows, cols)
        self.order, self.position = None, 0

    def next_batch(self, n):
        if self.order is None or self.position + n > self.images.shape[0]:
            self.order, self.position = torch.randperm(self.images.shape[0]), 0
        batch = self.images.index_select(0, self.order[self.position:self.position + n])
        self.position += n
        return batch


def images_path(data):
    images = data["images"]
    return images if os.path.isabs(images) or images.startswith("./") else os.path.join(data["dir"], images)


def build_data(data):
    if data["name"] == "moons":
        return Moons(data.get("noise"))
    if data["name"] == "fashion_mnist":
        return ImageEpochs(images_path(data), data["limit"])
    raise SystemExit(f"cpu_vs_pytorch_models.py: data {data['name']} is not mirrored (moons, fashion_mnist)")


# ---- training pieces (flow/time_sampler.cpp, nn/lr_schedule.cpp, nn/optim.cpp) ----------------------------

def sample_times(n, train):
    kind = train["time_sampler"]
    if kind == "uniform":
        t = torch.rand(n)
    elif kind in ("logit_normal", "logitnormal"):
        t = torch.sigmoid(train["logit_normal_mean"] + train["logit_normal_std"] * torch.randn(n))
    elif kind in ("warp", "polynomial_warp"):
        s, u = train["time_warp_s"], torch.rand(n)
        t = ((4.0 * (1.0 - s) * u + 6.0 * (s - 1.0)) * u + (3.0 - 2.0 * s)) * u
    else:
        raise SystemExit(f"cpu_vs_pytorch_models.py: time sampler {kind} is not mirrored")
    # TimeSampler::sample clamps to [0, the largest float32 below 1].
    return t.clamp(0.0, float(torch.nextafter(torch.tensor(1.0), torch.tensor(0.0))))


def lr_at(step, train):
    """LRSchedule::lr_at with final_lr 0 (tools/run_setup.cpp)."""
    base, warmup, total = train["lr"], train["warmup_steps"], train["steps"]
    if step < warmup:
        return base * (step + 1) / warmup
    if train["lr_schedule"] == "constant":
        return base
    decay = total - warmup
    progress = 1.0 if decay <= 0 else min(1.0, (step - warmup) / decay)
    return 0.5 * base * (1.0 + math.cos(math.pi * progress))


def build_optimizer(train, parameters):
    name = train["optimizer"]
    if name == "sgd":
        return torch.optim.SGD(parameters, lr=train["lr"], momentum=train["momentum"],
                               weight_decay=train["weight_decay"])
    kind = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
    return kind(parameters, lr=train["lr"], betas=(train["beta1"], train["beta2"]), eps=1e-8,
                weight_decay=train["weight_decay"])


def clip_grad_norm(grads, max_norm):
    """nn::clip_grad_norm: the global 2-norm (one host read); scale by max_norm / (norm + 1e-6) only when
    that is below 1. fmtrain always measures the norm and passes +inf when train.grad_clip is 0."""
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])).item()
    coefficient = max_norm / (norm + 1e-6)
    if math.isfinite(norm) and coefficient < 1.0:
        torch._foreach_mul_(grads, coefficient)
    return norm


def loss_by_time_bins(per_sample, t):
    bins = (t * LOSS_BINS).floor().clamp(0, LOSS_BINS - 1).long()
    sums = torch.zeros(LOSS_BINS, dtype=torch.float64).index_add_(0, bins, per_sample.double())
    counts = torch.bincount(bins, minlength=LOSS_BINS)
    return [s / c if c else float("nan") for s, c in zip(sums.tolist(), counts.tolist())]


def check_mirrored(config):
    if config["path"]["scheduler"] != "condot":
        raise SystemExit("cpu_vs_pytorch_models.py: only path.scheduler condot is mirrored")
    if config["sample"]["solver"] != "euler":
        raise SystemExit("cpu_vs_pytorch_models.py: only sample.solver euler is mirrored")


# ---- the run ---------------------------------------------------------------------------------------------

def train(config, model, data, metrics_fd):
    """fmtrain's loop (tools/train_run.cpp TrainingLoop::run + flow/trainer.cpp train_step)."""
    train_cfg = config["train"]
    steps, batch, log_every = train_cfg["steps"], train_cfg["batch_size"], train_cfg["log_every"]
    max_norm = train_cfg["grad_clip"] if train_cfg["grad_clip"] > 0 else math.inf
    parameters = list(model.parameters())
    optimizer = build_optimizer(train_cfg, parameters)
    decay = train_cfg["ema_decay"]
    shadows = [p.detach().clone() for p in parameters] if decay > 0 else None
    loss_sum, loss_count, loss_avg = 0.0, 0, float("nan")

    begin = time.perf_counter()
    for step in range(1, steps + 1):
        model.train()
        x1 = data.next_batch(batch)
        t = sample_times(batch, train_cfg)            # the order of draws: t, then x0 (flow/loss.cpp)
        x0 = torch.randn_like(x1)
        t_b = t.reshape([batch] + [1] * (x1.dim() - 1))
        x_t = t_b * x1 + (1.0 - t_b) * x0             # CondOTPath::sample
        squared_error = (model(x_t, t) - (x1 - x0)).square()
        per_sample = squared_error.mean(dim=list(range(1, x1.dim())))
        loss = per_sample.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = clip_grad_norm([p.grad for p in parameters if p.grad is not None], max_norm)
        lr = lr_at(step - 1, train_cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.step()
        if shadows is not None:
            with torch.no_grad():
                torch._foreach_lerp_(shadows, [p.detach() for p in parameters], 1.0 - decay)
        loss_value = loss.item()
        by_bin = loss_by_time_bins(per_sample.detach(), t)
        loss_sum += loss_value
        loss_count += 1
        if step % log_every == 0 or step == steps:
            elapsed = time.perf_counter() - begin
            loss_avg = loss_sum / loss_count
            line = {"step": step, "loss": loss_value, "loss_avg": loss_avg, "loss_by_t": by_bin, "lr": lr,
                    "grad_norm": grad_norm, "examples_per_s": step * batch / elapsed, "elapsed_s": elapsed}
            os.write(metrics_fd, (json.dumps(line) + "\n").encode())
            loss_sum, loss_count = 0.0, 0
    return elapsed, loss_avg, shadows


def sample(config, model, shadows, example_shape):
    sample_cfg = config["sample"]
    if shadows is not None and sample_cfg["use_ema"]:
        with torch.no_grad():
            for p, s in zip(model.parameters(), shadows):
                p.copy_(s)
    n, steps = sample_cfg["n"], sample_cfg["steps"]
    torch.manual_seed(sample_cfg["seed"])
    model.eval()
    with torch.no_grad():
        begin = time.perf_counter()
        out = torch.empty([n] + example_shape)
        for start in range(0, n, SAMPLE_CHUNK):
            count = min(SAMPLE_CHUNK, n - start)
            x = torch.randn([count] + example_shape)
            for i in range(steps):
                t, t_next = i / steps, 1.0 if i + 1 == steps else (i + 1) / steps
                x = x + model(x, torch.full((count,), t)) * (t_next - t)
            out[start:start + count].copy_(x)
        seconds = time.perf_counter() - begin
    return seconds, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="a resolved config.json written by fmtrain")
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--metrics", required=True, help="where the metrics lines go")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with open(args.config) as f:
        config = json.load(f)
    check_mirrored(config)
    torch.manual_seed(config["train"]["seed"])
    model = build_model(config["model"])
    parameters = sum(p.numel() for p in model.parameters())
    data = build_data(config["data"])
    example_shape = [2] if config["model"]["type"] == "mlp" else list(data.images.shape[1:])
    metrics_fd = os.open(args.metrics, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        train_seconds, loss_avg, shadows = train(config, model, data, metrics_fd)
    finally:
        os.close(metrics_fd)
    sampling_seconds, samples = sample(config, model, shadows, example_shape)
    if not torch.isfinite(samples).all():
        raise SystemExit("cpu_vs_pytorch_models.py: the samples hold NaN/Inf")
    print(json.dumps({"parameters": parameters, "train_seconds": train_seconds, "sampling_seconds": sampling_seconds,
                      "loss_avg": loss_avg, "torch_version": torch.__version__, "threads": torch.get_num_threads()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
