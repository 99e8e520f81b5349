"""What act-order costs the `gemm` op at decode: `python benchmarks/act_order_overhead.py`.

Times each layer shape symmetric and with a random act-order perm, alternating, three rounds in
one process (CUDA-graph replay, weights rotated past the L2, as bench_gemm.py), then profiles 40
eager M = 1 calls of each (fp16) to split the act-order time into its kernels: the gather of
a[:, perm] (csrc/gather_columns_kernel.cuh) and the decode kernel.
"""

import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from w4a16_rdna3 import _ops  # noqa: E402
from w4a16_rdna3.bench import Int4Layer, rotated_int4_layers, time_us  # noqa: E402

SHAPES = [(5120, 27648), (4096, 14336), (14336, 4096)]  # (K, N)
DECODE_M = [1, 2, 8]
GROUP_SIZE = 128
ROUNDS = 3
PROFILED_CALLS = 40


def gemm_call(a: torch.Tensor, layers: list[Int4Layer]) -> Callable[[int], torch.Tensor]:
    return lambda i: _ops.gemm(a, layers[i].b_q, layers[i].scales, None, layers[i].perm, None, backend="native")


def activations(m: int, k: int, dtype: torch.dtype) -> torch.Tensor:
    return torch.randn((m, k), generator=torch.Generator("cuda").manual_seed(1), device="cuda").to(dtype)


def kernel_medians_us(a: torch.Tensor, layers: list[Int4Layer]) -> dict[str, float]:
    """Median device time of each kernel the op launches, over PROFILED_CALLS eager calls."""
    call = gemm_call(a, layers)
    for i in range(10):
        call(i % len(layers))
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for i in range(PROFILED_CALLS):
            call(i % len(layers))
        torch.cuda.synchronize()
    times: dict[str, list[float]] = {}
    for event in prof.events():
        if event.device_type == torch.autograd.DeviceType.CUDA:
            times.setdefault(event.name.split("(")[0], []).append(event.device_time_total)
    return {name: statistics.median(us) for name, us in times.items()}


def main() -> int:
    if not torch.cuda.is_available():
        print("act_order_overhead needs a GPU (torch.cuda.is_available() is False)")
        return 1
    for dtype in (torch.float16, torch.bfloat16):
        for k, n in SHAPES:
            symmetric = rotated_int4_layers(k, n, GROUP_SIZE, dtype, torch.device("cuda"), zeros=False)
            act_order = rotated_int4_layers(k, n, GROUP_SIZE, dtype, torch.device("cuda"), zeros=False, act_order=True)
            for m in DECODE_M:
                a = activations(m, k, dtype)
                rounds = [(time_us(gemm_call(a, symmetric), len(symmetric)),
                           time_us(gemm_call(a, act_order), len(act_order))) for _ in range(ROUNDS)]
                print(f"{dtype} ({k}, {n}) M = {m}: symmetric / act-order us:",
                      "  ".join(f"{s:.2f} / {x:.2f}" for s, x in rounds), flush=True)
            if dtype == torch.float16:
                a = activations(1, k, dtype)
                for label, layers in (("symmetric", symmetric), ("act-order", act_order)):
                    for name, us in kernel_medians_us(a, layers).items():
                        print(f"    M = 1 {label}: {name} {us:.2f} us", flush=True)
            del symmetric, act_order
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
