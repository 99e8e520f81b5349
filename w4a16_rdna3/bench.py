"""Timing utilities shared by every benchmark.

Rules they enforce, because each one once made a number lie:
* device time from events, median of many runs after a warm-up;
* calls are replayed from a CUDA/HIP graph, so the Python launch cost of a short kernel is not
  counted as GPU time (a 10 us kernel behind 40 us of Python would otherwise read as 40 us);
* weights rotate over enough copies to exceed the last-level cache (the L2; on AMD GPUs also the
  Infinity Cache behind it), so every call streams its weights from memory as it does in a real
  model (each layer's weights are read once per token);
* data is random, never zeros (zero pages and compressed memory can flatter a kernel).
"""

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

DEFAULT_L2_BYTES = 64 * 2**20  # used when the device does not report its L2 size
# AMD GPUs keep a last-level cache behind the L2 (Infinity Cache / MALL: 96 MB on an RX 7900 XTX,
# 256 MB on an MI300X) that torch's device properties leave out. Weights that fit in it would be
# timed at its speed, well above memory's, so on ROCm the copies must exceed this bound too.
ROCM_LAST_LEVEL_CACHE_BYTES = 256 * 2**20
_PACK_FACTOR = 8  # int4 values per int32
# torch.cuda._sleep spins for a count of clock ticks: SM cycles on NVIDIA, a 100 MHz wall clock on gfx11.
# A rate above any GPU's boost clock makes every sleep at least as long as asked (about 25x on gfx11:
# a few milliseconds more per timing, harmless).
_MAX_CLOCK_HZ = 2.5e9


@dataclass(frozen=True)
class Int4Layer:
    """Kernel-layout weights (DESIGN.md) for timing: random contents, not a quantised matrix."""

    b_q: torch.Tensor
    scales: torch.Tensor
    zeros: torch.Tensor | None
    perm: torch.Tensor | None


def l2_cache_bytes(device: torch.device) -> int:
    """L2 size from the device properties; DEFAULT_L2_BYTES where unknown."""
    props = torch.cuda.get_device_properties(device)
    size = getattr(props, "L2_cache_size", 0)
    return int(size) if size and size > 0 else DEFAULT_L2_BYTES


def last_level_cache_bytes(device: torch.device) -> int:
    """The largest cache between the kernels and memory: the L2 on NVIDIA; on ROCm the larger of the
    L2 and ROCM_LAST_LEVEL_CACHE_BYTES."""
    l2 = l2_cache_bytes(device)
    return max(l2, ROCM_LAST_LEVEL_CACHE_BYTES) if torch.version.hip else l2


def copies_to_exceed_cache(bytes_per_copy: int, device: torch.device) -> int:
    """Number of copies whose total is at least twice the last-level cache (at least 2)."""
    return max(2, math.ceil(2 * last_level_cache_bytes(device) / max(1, bytes_per_copy)))


def int4_bytes(k: int, n: int, group_size: int, dtype: torch.dtype, zeros: bool, act_order: bool = False) -> int:
    """Bytes a W4A16 GEMM must read for its weights: int4 values, scales, packed zeros, perm."""
    groups = k // group_size
    scale_bytes = groups * n * torch.finfo(dtype).bits // 8
    zero_bytes = groups * n // 2 if zeros else 0
    perm_bytes = 4 * k if act_order else 0
    return k * n // 2 + scale_bytes + zero_bytes + perm_bytes


def bandwidth_limit_us(nbytes: int, bandwidth_gbs: float) -> float:
    """Time to move `nbytes` at `bandwidth_gbs` (GB/s = 1e9 B/s), in microseconds."""
    return nbytes / (bandwidth_gbs * 1e9) * 1e6


def random_int4_layer(
    k: int, n: int, group_size: int, dtype: torch.dtype, device: torch.device, *, zeros: bool, seed: int,
    act_order: bool = False,
) -> Int4Layer:
    """Random kernel-layout weights made on the device (fast for large layers).

    Scales are positive, about 1/(8 sqrt(K)) so outputs stay O(|a|) for a ~ N(0, 1). With
    `act_order`, perm is a random permutation of K: every activation gather scattered, as in a
    GPTQ desc_act checkpoint.
    """
    gen = torch.Generator(device=device).manual_seed(seed)
    b_q = torch.randint(-(2**31), 2**31, (k // _PACK_FACTOR, n), generator=gen, device=device, dtype=torch.int64)
    scale = (torch.rand((k // group_size, n), generator=gen, device=device) + 0.5) / (8 * math.sqrt(k))
    z = None
    if zeros:
        z = torch.randint(-(2**31), 2**31, (k // group_size, n // _PACK_FACTOR), generator=gen, device=device,
                          dtype=torch.int64).to(torch.int32)
    perm = None
    if act_order:
        perm = torch.randperm(k, generator=gen, device=device).to(torch.int32)
    return Int4Layer(b_q=b_q.to(torch.int32), scales=scale.to(dtype), zeros=z, perm=perm)


def rotated_int4_layers(
    k: int, n: int, group_size: int, dtype: torch.dtype, device: torch.device, *, zeros: bool,
    act_order: bool = False,
) -> list[Int4Layer]:
    """Random layers (seeds 0, 1, ...), enough of them that calls cycling through them read their
    weights from memory, not from the last-level cache (copies_to_exceed_cache)."""
    copies = copies_to_exceed_cache(int4_bytes(k, n, group_size, dtype, zeros, act_order), device)
    return [random_int4_layer(k, n, group_size, dtype, device, zeros=zeros, seed=s, act_order=act_order)
            for s in range(copies)]


def time_us(call: Callable[[int], object], copies: int, *, warmup: int = 10, reps: int = 100) -> float:
    """Median device time in microseconds of one `call(i)`, i cycling over range(copies).

    The calls are captured in a CUDA (or HIP) graph and the graph is replayed, as a serving engine
    does at decode: launch costs on the CPU (Python, argument checks, the Triton launcher) are
    then out of the measurement, which is the kernels' time back to back. Each replay is timed
    with events and holds at least `copies` calls; the median over replays is divided by the
    calls per replay. Work that cannot be captured is timed call by call instead.
    """
    for i in range(warmup):
        call(i % copies)
    torch.cuda.synchronize()
    calls = copies * math.ceil(10 / copies)
    replays = max(10, reps // calls)
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            for i in range(calls):
                call(i % copies)
    except RuntimeError:
        torch.cuda.synchronize()
        return _time_calls_us(call, copies, reps)
    graph.replay()
    torch.cuda.synchronize()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(replays)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(replays)]
    for i in range(replays):
        starts[i].record()
        graph.replay()
        ends[i].record()
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) for s, e in zip(starts, ends)) * 1e3 / calls


def _time_calls_us(call: Callable[[int], object], copies: int, reps: int) -> float:
    """Per-call events; a sleep kernel queued first keeps the GPU busy while the CPU queues the
    calls (sized from the measured CPU cost per call), so the events see back-to-back kernels."""
    t0 = time.perf_counter()
    for i in range(copies):
        call(i)
    cpu_s = (time.perf_counter() - t0) / copies
    torch.cuda.synchronize()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    torch.cuda._sleep(int(2 * reps * cpu_s * _MAX_CLOCK_HZ))
    for i in range(reps):
        starts[i].record()
        call(i % copies)
        ends[i].record()
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) for s, e in zip(starts, ends)) * 1e3


def measure_copy_bandwidth(device: torch.device, nbytes: int = 2**30, reps: int = 20) -> float:
    """Device-to-device copy bandwidth in GB/s, counting bytes read plus bytes written.

    Timed call by call, not from a graph: a copy captured in a graph becomes a memcpy node, and on
    an H100 it measured 2442 GB/s that way against 3006 GB/s eagerly, which would understate the
    bandwidth a kernel can reach.
    """
    src = torch.randint(0, 2**31 - 1, (nbytes // 4,), dtype=torch.int32, device=device)
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    torch.cuda.synchronize()
    us = _time_calls_us(lambda _: dst.copy_(src), 1, reps)
    return 2 * nbytes / (us * 1e-6) / 1e9


def time_dense_matmul_us(m: int, k: int, n: int, dtype: torch.dtype, device: torch.device,
                         *, warmup: int = 10, reps: int = 100) -> float:
    """Median time of torch.matmul(a [m, k], w [k, n]) with w rotated past the last-level cache."""
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn((m, k), generator=gen, device=device).to(dtype)
    copies = copies_to_exceed_cache(k * n * torch.finfo(dtype).bits // 8, device)
    weights = [torch.randn((k, n), generator=gen, device=device).to(dtype) for _ in range(copies)]
    return time_us(lambda i: torch.matmul(a, weights[i]), copies, warmup=warmup, reps=reps)


def tflops(m: int, k: int, n: int, us: float) -> float:
    return 2 * m * k * n / (us * 1e-6) / 1e12
