#!/usr/bin/env python3
"""bench/unet_pytorch.py — the PyTorch reference for the kernel lab, run on the same GPU in the same call.

Two modes:

  python3 bench/unet_pytorch.py [--batch 256] [--steps 20] [--warmup-steps 5] [--need-weights]
      Training throughput of seed 002's U-Net written in PyTorch exactly as nn/unet.cpp,
      nn/unet_blocks.cpp and nn/time_embedding.cpp build it (same modules, same parameter names, so the
      parameter count printed here must equal the one `fmbench unet` prints), FP32 without TF32, the
      same flow-matching step (CondOT path, t ~ U[0, 1), MSE against x1 - x0, Adam lr 1e-3) on a fixed
      random batch in [-1, 1]. Warm-up steps, then timed steps between two torch.cuda.synchronize()
      calls; prints images/s, ms/step and peak memory (torch.cuda.max_memory_allocated over model,
      optimiser and steps, minus what was allocated before: the same count as fmbench's).

  python3 bench/unet_pytorch.py --precision fp32|defaults|tf32|bf16 [--compile none|default|max-autotune]
                                [--cudnn-benchmark] [--csv FILE] [--device cuda|cpu]
      The same training step as a user would run it (issue 14's baselines):
        fp32      strict FP32: no TF32 in matmuls or convolutions (the default of this script)
        defaults  PyTorch's own defaults: TF32 convolutions (cudnn.allow_tf32 = True), FP32 matmuls
        tf32      TF32 in convolutions and matmuls (torch.backends.*.allow_tf32 = True)
        bf16      bf16 autocast around forward + loss, FP32 weights and Adam state (no loss scale:
                  bf16 has FP32's exponent range)
      --compile wraps the model in torch.compile (compile time is spent in the warm-up steps and
      printed separately). --csv appends one row (framework, precision, compile, cudnn.benchmark,
      batch, ms/step, images/s, peak bytes, first loss, last loss) for tools/gpu_bench.sh's table.
      --device cpu runs the same code on the CPU (a smoke test of this script where no GPU is lent).

  python3 bench/unet_pytorch.py --compare-bench [--shapes default|small] [--repeats 50]
      PyTorch's own kernels at the kernel lab's shapes, timed the way fmbench times (CUDA events, the
      L2 flushed by reading a buffer of twice its size before every repeat, median and min):
      F.silu / aten.silu_backward, aten.native_group_norm (+ its backward, with and without a SiLU),
      conv2d and conv_transpose2d forward, bwd-data and bwd-weight (aten.convolution_backward with one
      output mask at a time), F.scaled_dot_product_attention forward and backward. The shape lists
      mirror bench/bench_*.cu: keep them in sync.

Notes on fairness:
  * nn.MultiheadAttention is called with need_weights=False by default, so PyTorch may use its fused
    SDPA path; the seed calls it with the default need_weights=True, which also materialises the
    head-averaged weights. --need-weights reproduces the seed's call exactly.
  * torch.backends.cudnn.benchmark stays False (cuDNN heuristics, as the engine's cuDNN baseline
    uses); --cudnn-benchmark lets cuDNN time its algorithms instead.
  * Adam uses PyTorch's default implementation (foreach); --adam fused|for-loop picks another.
"""
import argparse
import math
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:  # The lab must not fail where PyTorch is missing; it says so and exits 0.
    print("unet_pytorch.py: PyTorch is not installed here; nothing to measure")
    sys.exit(0)


# =====================================================================================================
# The model: seed 002's U-Net, as nn/unet.cpp builds it
# =====================================================================================================

def get_time_embedding(time_steps, temb_dim):
    """Seed 002's sinusoidal embedding: [sin(t / 10000^(i/half)), cos(...)], i = 0 .. half-1."""
    half = temb_dim // 2
    factor = 10000 ** (torch.arange(0, half, dtype=torch.float32, device=time_steps.device) / half)
    t_emb = time_steps[:, None].repeat(1, half) / factor
    return torch.cat([torch.sin(t_emb), torch.cos(t_emb)], dim=-1)


def norm_act_conv(in_channels, out_channels, groups):
    """GroupNorm -> SiLU -> Conv3x3: the seed's resnet_conv_* Sequential (names .0, .1, .2)."""
    return nn.Sequential(nn.GroupNorm(groups, in_channels), nn.SiLU(),
                         nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1))


def time_layer(t_emb_dim, out_channels):
    """SiLU -> Linear: the seed's t_emb_layers Sequential."""
    return nn.Sequential(nn.SiLU(), nn.Linear(t_emb_dim, out_channels))


def resnet_part(conv_first, time_layer_, conv_second, residual_conv, x, t_emb):
    out = conv_first(x)
    out = out + time_layer_(t_emb)[:, :, None, None]
    out = conv_second(out)
    return out + residual_conv(x)


def attention_part(norm, attention, out, need_weights):
    batch, channels, h, w = out.shape
    tokens = norm(out.reshape(batch, channels, h * w)).transpose(1, 2)
    attended, _ = attention(tokens, tokens, tokens, need_weights=need_weights)
    return out + attended.transpose(1, 2).reshape(batch, channels, h, w)


class DownBlock(nn.Module):
    def __init__(self, in_channels, out_channels, t_emb_dim, down_sample, attend, num_heads, groups, need_weights):
        super().__init__()
        self.need_weights = need_weights
        self.resnet_conv_first = norm_act_conv(in_channels, out_channels, groups)
        self.t_emb_layers = time_layer(t_emb_dim, out_channels)
        self.resnet_conv_second = norm_act_conv(out_channels, out_channels, groups)
        self.attend = attend
        if attend:
            self.attention_norms = nn.GroupNorm(groups, out_channels)
            self.attentions = nn.MultiheadAttention(out_channels, num_heads, batch_first=True)
        self.residual_input_conv = nn.Conv2d(in_channels, out_channels, kernel_size=1)
        self.down_sample_conv = nn.Conv2d(out_channels, out_channels, 4, 2, 1) if down_sample else nn.Identity()

    def forward(self, x, t_emb):
        out = resnet_part(self.resnet_conv_first, self.t_emb_layers, self.resnet_conv_second,
                          self.residual_input_conv, x, t_emb)
        if self.attend:
            out = attention_part(self.attention_norms, self.attentions, out, self.need_weights)
        return self.down_sample_conv(out)


class MidBlock(nn.Module):
    def __init__(self, in_channels, out_channels, t_emb_dim, num_heads, groups, need_weights):
        super().__init__()
        self.need_weights = need_weights
        self.resnet_convs = nn.ModuleList([norm_act_conv(in_channels, out_channels, groups)] +
                                          [norm_act_conv(out_channels, out_channels, groups) for _ in range(3)])
        self.t_emb_layers = nn.ModuleList([time_layer(t_emb_dim, out_channels) for _ in range(2)])
        self.attention_norms = nn.GroupNorm(groups, out_channels)
        self.attentions = nn.MultiheadAttention(out_channels, num_heads, batch_first=True)
        self.residual_input_conv = nn.ModuleList([nn.Conv2d(in_channels, out_channels, kernel_size=1),
                                                  nn.Conv2d(out_channels, out_channels, kernel_size=1)])

    def forward(self, x, t_emb):
        out = resnet_part(self.resnet_convs[0], self.t_emb_layers[0], self.resnet_convs[1],
                          self.residual_input_conv[0], x, t_emb)
        out = attention_part(self.attention_norms, self.attentions, out, self.need_weights)
        return resnet_part(self.resnet_convs[2], self.t_emb_layers[1], self.resnet_convs[3],
                           self.residual_input_conv[1], out, t_emb)


class UpBlock(nn.Module):
    """in_channels counts the channels after concatenating the skip connection."""

    def __init__(self, in_channels, out_channels, t_emb_dim, up_sample, attend, num_heads, groups, need_weights):
        super().__init__()
        self.need_weights = need_weights
        self.resnet_conv_first = norm_act_conv(in_channels, out_channels, groups)
        self.t_emb_layers = time_layer(t_emb_dim, out_channels)
        self.resnet_conv_second = norm_act_conv(out_channels, out_channels, groups)
        self.attend = attend
        if attend:
            self.attention_norms = nn.GroupNorm(groups, out_channels)
            self.attentions = nn.MultiheadAttention(out_channels, num_heads, batch_first=True)
        self.residual_input_conv = nn.Conv2d(in_channels, out_channels, kernel_size=1)
        self.up_sample_conv = (nn.ConvTranspose2d(in_channels // 2, in_channels // 2, 4, 2, 1)
                               if up_sample else nn.Identity())

    def forward(self, x, skip, t_emb):
        joined = torch.cat([self.up_sample_conv(x), skip], dim=1)
        out = resnet_part(self.resnet_conv_first, self.t_emb_layers, self.resnet_conv_second,
                          self.residual_input_conv, joined, t_emb)
        if self.attend:
            out = attention_part(self.attention_norms, self.attentions, out, self.need_weights)
        return out


class UNet(nn.Module):
    """UNetConfig's defaults: down 32-64-128, mid 128-64, t_emb 128, down_sample [T, T], attention [F, T]."""

    def __init__(self, im_channels=1, down_channels=(32, 64, 128), mid_channels=(128, 64), t_emb_dim=128,
                 down_sample=(True, True), attend=(False, True), num_heads=4, groups=8, final_channels=16,
                 need_weights=False):
        super().__init__()
        self.t_emb_dim = t_emb_dim
        self.t_proj = nn.Sequential(nn.Linear(t_emb_dim, t_emb_dim), nn.SiLU(), nn.Linear(t_emb_dim, t_emb_dim))
        self.conv_in = nn.Conv2d(im_channels, down_channels[0], kernel_size=3, padding=1)
        blocks = len(down_channels) - 1
        self.downs = nn.ModuleList([
            DownBlock(down_channels[i], down_channels[i + 1], t_emb_dim, down_sample[i], attend[i], num_heads,
                      groups, need_weights) for i in range(blocks)])
        self.mids = nn.ModuleList([
            MidBlock(mid_channels[i], mid_channels[i + 1], t_emb_dim, num_heads, groups, need_weights)
            for i in range(len(mid_channels) - 1)])
        self.ups = nn.ModuleList([
            UpBlock(down_channels[i] * 2, down_channels[i - 1] if i != 0 else final_channels, t_emb_dim,
                    down_sample[i], attend[i], num_heads, groups, need_weights) for i in reversed(range(blocks))])
        self.norm_out = nn.GroupNorm(groups, final_channels)
        self.conv_out = nn.Conv2d(final_channels, im_channels, kernel_size=3, padding=1)

    def forward(self, x, t):
        t_emb = self.t_proj(get_time_embedding(t, self.t_emb_dim))
        out = self.conv_in(x)
        skips = []
        for down in self.downs:
            skips.append(out)
            out = down(out, t_emb)
        for mid in self.mids:
            out = mid(out, t_emb)
        for up in self.ups:
            out = up(out, skips.pop(), t_emb)
        return self.conv_out(F.silu(self.norm_out(out)))


def set_precision(precision, cudnn_benchmark):
    """The backend switches of one precision mode (see the module docstring)."""
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    torch.backends.cudnn.allow_tf32 = precision in ("tf32", "defaults")
    torch.backends.cudnn.benchmark = cudnn_benchmark


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_throughput(args):
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    set_precision(args.precision, args.cudnn_benchmark)
    synchronize(device)
    if device.type == "cuda":
        allocated_before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()

    model = UNet(need_weights=args.need_weights).to(device)
    model.train()
    parameters = sum(p.numel() for p in model.parameters())
    adam_kwargs = {"foreach": {"foreach": True}, "fused": {"fused": True}, "for-loop": {"foreach": False}}[args.adam]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, **adam_kwargs)
    forward = model if args.compile == "none" else torch.compile(
        model, mode=None if args.compile == "default" else args.compile)
    x1 = torch.rand(args.batch, 1, 28, 28, device=device) * 2 - 1  # a fixed batch in [-1, 1]
    autocast_dtype = torch.bfloat16 if args.precision == "bf16" else None

    def step():
        t = torch.rand(args.batch, device=device)
        x0 = torch.randn_like(x1)
        t4 = t[:, None, None, None]
        x_t = (1 - t4) * x0 + t4 * x1          # CondOT path: t = 0 noise, t = 1 data
        with torch.autocast(device.type, dtype=autocast_dtype or torch.float32,
                            enabled=autocast_dtype is not None):
            loss = F.mse_loss(forward(x_t, t).float(), x1 - x0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    warmup_start = time.perf_counter()
    first_loss = step().item()
    for _ in range(args.warmup_steps - 1):
        step()
    synchronize(device)
    warmup_seconds = time.perf_counter() - warmup_start
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    synchronize(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() - allocated_before if device.type == "cuda" else 0
    last_loss = loss.item()
    if not (math.isfinite(first_loss) and math.isfinite(last_loss)):
        print(f"unet_pytorch.py: a loss is not finite (first {first_loss}, last {last_loss})")
        return 1

    ms_per_step = seconds * 1e3 / args.steps
    images_per_s = args.batch * args.steps / seconds
    print(f"== PyTorch {torch.__version__}: seed 002 U-Net training, batch {args.batch}, CondOT, uniform t, "
          f"Adam 1e-3 ({args.adam}), precision {args.precision}, compile {args.compile} ==")
    if device.type == "cuda":
        print(f"   device: {torch.cuda.get_device_name(0)} | cuDNN {torch.backends.cudnn.version()} | "
              f"need_weights={args.need_weights} | cudnn.benchmark={torch.backends.cudnn.benchmark}")
    else:
        print(f"   device: cpu ({torch.get_num_threads()} threads)")
    print(f"   parameters: {parameters} (must equal the count `fmbench unet` prints)")
    print(f"   {args.warmup_steps} warm-up steps ({warmup_seconds:.1f} s, compilation included), then "
          f"{args.steps} timed steps between two synchronisations")
    print(f"{'framework':<10} {'ms/step':>10} {'images/s':>12} {'peak GPU memory':>16} {'first loss':>12} "
          f"{'last loss':>12}")
    print(f"{'pytorch':<10} {ms_per_step:>10.2f} {images_per_s:>12.0f} "
          f"{peak / 1e6:>13.1f} MB {first_loss:>12.6f} {last_loss:>12.6f}")
    if args.csv:
        with open(args.csv, "a") as f:
            f.write(f"pytorch,{args.precision},{args.compile},{int(args.cudnn_benchmark)},{args.batch},"
                    f"{ms_per_step:.4f},{images_per_s:.1f},{peak},{first_loss:.6g},{last_loss:.6g}\n")
    return 0


# =====================================================================================================
# --compare-bench: PyTorch's kernels at the kernel lab's shapes
# =====================================================================================================

class Timer:
    """CUDA events around each repeat, an L2 flush (a read of 2x L2) before each; median and min."""

    def __init__(self, repeats, seconds_per_version=1.0):
        self.repeats = repeats
        self.seconds_per_version = seconds_per_version
        l2 = getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 50 << 20) or (50 << 20)
        self.flush_buffer = torch.empty(max(2 * l2, 64 << 20) // 4, dtype=torch.float32, device="cuda").uniform_()

    def flush(self):
        self.flush_buffer.sum()  # reads only: no dirty lines left in L2

    def time(self, fn):
        fn()  # first call: algorithm selection, allocations
        torch.cuda.synchronize()
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        self.flush()
        start.record()
        fn()
        stop.record()
        torch.cuda.synchronize()
        estimate = max(start.elapsed_time(stop), 1e-3)
        for _ in range(3 if estimate < 5 else 1 if estimate < 100 else 0):
            fn()
        repeats = self.repeats
        if estimate * repeats > self.seconds_per_version * 1e3:
            repeats = min(repeats, max(5, int(self.seconds_per_version * 1e3 / estimate)))
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(repeats)]
        for begin, end in events:
            self.flush()
            begin.record()
            fn()
            end.record()
        torch.cuda.synchronize()
        times = sorted(begin.elapsed_time(end) for begin, end in events)
        median = times[len(times) // 2] if len(times) % 2 else 0.5 * (times[len(times) // 2 - 1] + times[len(times) // 2])
        return median, times[0]


def print_row(shape, pass_name, op, timing, flops=None, bytes_moved=None):
    median, minimum = timing
    if flops:
        rate = f"{flops / (median * 1e-3) / 1e12:.2f} TFLOP/s"
    elif bytes_moved:
        rate = f"{bytes_moved / (median * 1e-3) / 1e9:.0f} GB/s"
    else:
        rate = "-"
    print(f"{shape:<32} {pass_name:<11} {op:<34} {median:>10.4f} {minimum:>10.4f} {rate:>14}", flush=True)


def print_header(title):
    print(f"\n== {title} ==")
    print(f"{'shape':<32} {'pass':<11} {'pytorch op':<34} {'median ms':>10} {'min ms':>10} {'throughput':>14}")


def compare_silu(timer, small):
    print_header("silu (PyTorch)")
    shapes = [(8, 32, 28, 28), (4, 64, 128, 128)] if small else \
        [(256, 32, 28, 28), (256, 64, 28, 28), (256, 128, 14, 14), (256, 64, 7, 7), (256, 256, 64, 64)]
    for dims in shapes:
        x = torch.empty(dims, device="cuda").uniform_(-6, 6)
        dy = torch.empty(dims, device="cuda").uniform_(-1, 1)
        n = x.numel()
        name = "x".join(map(str, dims))
        print_row(name, "fwd", "F.silu", timer.time(lambda: F.silu(x)), bytes_moved=8 * n)
        print_row(name, "bwd", "aten.silu_backward", timer.time(lambda: torch.ops.aten.silu_backward(dy, x)),
                  bytes_moved=12 * n)
        del x, dy


def compare_group_norm(timer, small):
    print_header("group_norm (PyTorch; no fused GroupNorm+SiLU in eager mode, so +silu is two ops)")
    shapes = [(8, 32, 28, 28), (8, 128, 7, 7), (4, 64, 64, 64)] if small else \
        [(256, 32, 28, 28), (256, 64, 28, 28), (256, 64, 14, 14), (256, 128, 14, 14), (256, 128, 7, 7),
         (64, 256, 64, 64)]
    groups, eps = 8, 1e-5
    for dims in shapes:
        N, C, H, W = dims
        x = torch.empty(dims, device="cuda").uniform_(-1, 3)
        gamma = torch.empty(C, device="cuda").uniform_(0.5, 1.5)
        beta = torch.empty(C, device="cuda").uniform_(-0.5, 0.5)
        dy = torch.empty(dims, device="cuda").uniform_(-1, 1)
        n = x.numel()
        name = "x".join(map(str, dims)) + f" G{groups}"
        forward = lambda: torch.ops.aten.native_group_norm(x, gamma, beta, N, C, H * W, groups, eps)
        z, mean, rstd = forward()
        print_row(name, "fwd", "aten.native_group_norm", timer.time(forward), bytes_moved=8 * n)
        print_row(name, "fwd+silu", "native_group_norm + F.silu",
                  timer.time(lambda: F.silu(forward()[0])), bytes_moved=8 * n)
        mask = [True, True, True]
        print_row(name, "bwd", "aten.native_group_norm_backward",
                  timer.time(lambda: torch.ops.aten.native_group_norm_backward(
                      dy, x, mean, rstd, gamma, N, C, H * W, groups, mask)), bytes_moved=12 * n)
        print_row(name, "bwd+silu", "silu_backward + gn_backward",
                  timer.time(lambda: torch.ops.aten.native_group_norm_backward(
                      torch.ops.aten.silu_backward(dy, z), x, mean, rstd, gamma, N, C, H * W, groups, mask)),
                  bytes_moved=12 * n)
        del x, dy, z


def compare_convolution(timer, small, transposed):
    """conv2d / conv_transpose2d: forward, then aten.convolution_backward with one pass per output mask."""
    batch = 8 if small else 256
    if transposed:
        print_header("conv_transpose2d (PyTorch, cuDNN FP32 without TF32)")
        # (C_in, C_out, H, kernel, stride, pad): the U-Net's two 4x4 stride-2 upsamplers
        layers = [(64, 64, 7, 4, 2, 1), (32, 32, 14, 4, 2, 1)]
    else:
        print_header("conv2d (PyTorch, cuDNN FP32 without TF32)")
        layers = [(32, 64, 28, 3, 1, 1), (64, 64, 28, 4, 2, 1), (128, 64, 7, 3, 1, 1), (64, 16, 28, 1, 1, 0)] \
            if small else [
            (1, 32, 28, 3, 1, 1), (32, 64, 28, 3, 1, 1), (64, 64, 28, 3, 1, 1), (32, 64, 28, 1, 1, 0),
            (64, 64, 28, 4, 2, 1), (64, 128, 14, 3, 1, 1), (128, 128, 14, 3, 1, 1), (64, 128, 14, 1, 1, 0),
            (128, 128, 14, 4, 2, 1), (128, 64, 7, 3, 1, 1), (64, 64, 7, 3, 1, 1), (128, 64, 7, 1, 1, 0),
            (64, 64, 7, 1, 1, 0), (128, 32, 14, 3, 1, 1), (32, 32, 14, 3, 1, 1), (128, 32, 14, 1, 1, 0),
            (64, 16, 28, 3, 1, 1), (16, 16, 28, 3, 1, 1), (64, 16, 28, 1, 1, 0), (16, 1, 28, 3, 1, 1)]
    for c_in, c_out, size, k, s, p in layers:
        x = torch.empty(batch, c_in, size, size, device="cuda").uniform_(-1, 1)
        if transposed:
            w = torch.empty(c_in, c_out, k, k, device="cuda").uniform_(-1, 1)
            forward = lambda: F.conv_transpose2d(x, w, b, stride=s, padding=p)
            flops = 2.0 * batch * size * size * c_in * c_out * k * k
        else:
            w = torch.empty(c_out, c_in, k, k, device="cuda").uniform_(-1, 1)
            forward = lambda: F.conv2d(x, w, b, stride=s, padding=p)
        b = torch.empty(c_out, device="cuda").uniform_(-1, 1)
        y = forward()
        if not transposed:
            flops = 2.0 * batch * y.shape[2] * y.shape[3] * c_out * c_in * k * k
        dy = torch.empty_like(y).uniform_(-1, 1)
        name = f"{batch}x{c_in}x{size}x{size}>{c_out} k{k}s{s}p{p}"
        sx, sy, sw, sb = x.numel() * 4, y.numel() * 4, w.numel() * 4, b.numel() * 4

        def backward(mask):
            return lambda: torch.ops.aten.convolution_backward(dy, x, w, [c_out], [s, s], [p, p], [1, 1], transposed,
                                                               [0, 0], 1, mask)
        op = "F.conv_transpose2d" if transposed else "F.conv2d"
        print_row(name, "fwd", op, timer.time(forward), flops=flops)
        print_row(name, "bwd-data", "aten.convolution_backward [T,F,F]", timer.time(backward([True, False, False])),
                  flops=flops)
        print_row(name, "bwd-weight", "aten.convolution_backward [F,T,T]", timer.time(backward([False, True, True])),
                  flops=flops)
        del x, w, b, y, dy


def compare_attention(timer, small):
    print_header("attention (PyTorch F.scaled_dot_product_attention, FP32)")
    shapes = [(8, 4, 196, 32), (8, 4, 49, 16)] if small else [(256, 4, 196, 32), (256, 4, 49, 16), (256, 4, 196, 8)]
    for B, H, L, D in shapes:
        q = torch.empty(B, H, L, D, device="cuda").uniform_(-2, 2).requires_grad_()
        k = torch.empty(B, H, L, D, device="cuda").uniform_(-2, 2).requires_grad_()
        v = torch.empty(B, H, L, D, device="cuda").uniform_(-1, 1).requires_grad_()
        dout = torch.empty(B, H, L, D, device="cuda").uniform_(-1, 1)
        name = f"B{B} H{H} L{L} D{D}"
        flops = 4.0 * B * H * L * L * D
        with torch.no_grad():
            print_row(name, "fwd", "F.scaled_dot_product_attention",
                      timer.time(lambda: F.scaled_dot_product_attention(q, k, v)), flops=flops)
        out = F.scaled_dot_product_attention(q, k, v)
        print_row(name, "bwd", "autograd.grad of SDPA",
                  timer.time(lambda: torch.autograd.grad(out, (q, k, v), dout, retain_graph=True)), flops=2 * flops)
        del q, k, v, out, dout


def compare_bench(args):
    print(f"== PyTorch {torch.__version__} reference kernels on {torch.cuda.get_device_name(0)}, cuDNN "
          f"{torch.backends.cudnn.version()}, FP32 without TF32; median of {args.repeats} CUDA-event times, L2 "
          f"flushed before each ==")
    timer = Timer(args.repeats)
    compare_silu(timer, args.shapes == "small")
    compare_group_norm(timer, args.shapes == "small")
    compare_convolution(timer, args.shapes == "small", transposed=False)
    compare_convolution(timer, args.shapes == "small", transposed=True)
    compare_attention(timer, args.shapes == "small")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup-steps", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--need-weights", action="store_true",
                        help="call nn.MultiheadAttention with need_weights=True, exactly as the seed does")
    parser.add_argument("--adam", choices=["foreach", "fused", "for-loop"], default="foreach")
    parser.add_argument("--cudnn-benchmark", action="store_true")
    parser.add_argument("--compare-bench", action="store_true",
                        help="time PyTorch's kernels at the kernel lab's shapes instead of training")
    parser.add_argument("--shapes", choices=["default", "small"], default="default")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--precision", choices=["fp32", "defaults", "tf32", "bf16"], default="fp32")
    parser.add_argument("--compile", choices=["none", "default", "max-autotune"], default="none")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--csv", help="append the training row to this CSV file")
    args = parser.parse_args()
    if args.steps < 1 or args.warmup_steps < 1 or args.batch < 1 or args.repeats < 1:
        parser.error("--batch, --steps, --warmup-steps and --repeats must be at least 1")
    if args.compare_bench and (args.device != "cuda" or args.precision != "fp32" or args.compile != "none"):
        parser.error("--compare-bench times FP32 kernels on the GPU: --device, --precision and --compile do not apply")

    if args.device == "cuda" and not torch.cuda.is_available():
        print("unet_pytorch.py: no CUDA device; nothing to measure")
        return 0
    if args.compare_bench:
        set_precision("fp32", args.cudnn_benchmark)  # FP32 everywhere, as the engine's kernels compute
        compare_bench(args)
        return 0
    return train_throughput(args)


if __name__ == "__main__":
    sys.exit(main())
