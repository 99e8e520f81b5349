"""Time candidate launch configurations of the Triton W4A16 kernels (how choose_config was tuned).

Compiling ~200 kernel variants one after the other would take minutes, so `--compile-only`
runs every candidate once in parallel worker processes (filling Triton's on-disk cache) and
the timing pass then loads them from the cache and times them one at a time on the GPU.

    python benchmarks/tune_triton.py --compile-only   # parallel warm-up
    python benchmarks/tune_triton.py [--out DIR]       # serial timing, markdown table
"""

import argparse
import multiprocessing
import sys
from pathlib import Path

import torch

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from w4a16_rdna3.bench import (  # noqa: E402
    copies_to_exceed_l2,
    int4_bytes,
    measure_copy_bandwidth,
    random_int4_layer,
    tflops,
    time_us,
)
from w4a16_rdna3.triton_w4a16 import TritonConfig, choose_config, gemm_with_config  # noqa: E402

SHAPES = [(4096, 14336), (14336, 4096), (5120, 27648), (4096, 4096)]  # (K, N)
DECODE_M = [1, 2, 4, 8, 16]
PREFILL_M = [256, 1024, 4096]
GROUP_SIZE = 128
DTYPE = torch.float16

# (block_n, num_warps, block_k): block_n / (32 * warps) columns and block_k / 8 packed rows per thread.
_GEMV_TILES = [(128, 1, 32), (128, 1, 64), (256, 1, 16), (256, 1, 32), (256, 2, 32), (256, 2, 64),
               (512, 1, 16), (512, 2, 16), (512, 2, 32), (512, 4, 32), (512, 4, 64), (1024, 4, 16),
               (1024, 4, 32)]
_GEMV_FEW = [(256, 1, 32), (512, 2, 16), (512, 4, 32), (256, 2, 64)]
_SPLITS = [1, 2, 4, 8, 16, 32, 64]
# A plain tiled kernel (no split-K, 16-row tiles): the baseline the decode paths are compared with.
PLAIN = TritonConfig("tiled", 16, 64, 128, 1, 4, 4)
# (block_m, block_n, block_k, num_warps, num_stages)
_TILED_DECODE = [(16, 64, 128, 4, 4), (16, 128, 128, 4, 4), (16, 64, 64, 4, 4), (16, 128, 64, 4, 3),
                 (16, 256, 64, 4, 3), (16, 64, 256, 4, 3)]
_TILED_PREFILL = [(128, 128, 64, 8, 3), (128, 128, 64, 4, 4), (128, 256, 64, 8, 3), (64, 128, 64, 4, 4),
                  (128, 128, 128, 8, 3), (256, 128, 64, 8, 3), (128, 64, 64, 4, 4), (64, 256, 64, 8, 3),
                  (128, 256, 32, 8, 4), (256, 64, 64, 8, 3)]


def candidates(m: int, k: int) -> list[TritonConfig]:
    out: list[TritonConfig] = []
    if m <= 16:
        tiles = _GEMV_TILES if m == 1 else _GEMV_FEW
        stages = (1, 3) if m == 1 else (1,)
        for (bn, w, bk) in tiles:
            for s in stages:
                out += [TritonConfig("gemv", 1, bn, bk, sp, w, s) for sp in _SPLITS if k // 8 // sp >= bk // 8]
        for (bm, bn, bk, w, s) in _TILED_DECODE:
            out += [TritonConfig("tiled", bm, bn, bk, sp, w, s) for sp in _SPLITS[:5] if k // 8 // sp >= bk // 8]
    else:
        out += [TritonConfig("tiled", bm, bn, bk, 1, w, s) for (bm, bn, bk, w, s) in _TILED_PREFILL]
    return out


def _jobs() -> list[tuple[int, int, int, TritonConfig]]:
    return [(k, n, m, c) for (k, n) in SHAPES for m in DECODE_M + PREFILL_M for c in candidates(m, k)]


def _warm(job: tuple[int, int, int, TritonConfig]) -> str:
    k, n, m, config = job
    try:
        layer = random_int4_layer(k, n, GROUP_SIZE, DTYPE, torch.device("cuda"), zeros=False, seed=0)
        a = torch.randn((m, k), device="cuda", dtype=DTYPE)
        gemm_with_config(a, layer.b_q, layer.scales, None, None, None, config)
        torch.cuda.synchronize()
        return ""
    except Exception as exc:  # a candidate that does not compile (shared memory, registers) is skipped
        return f"{job}: {type(exc).__name__}: {str(exc)[:200]}"


def compile_all(processes: int) -> None:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(processes) as pool:
        for err in pool.imap_unordered(_warm, _jobs(), chunksize=4):
            if err:
                print("compile failed:", err, file=sys.stderr)


def time_all() -> str:
    device = torch.device("cuda")
    copy_gbs = measure_copy_bandwidth(device)
    lines = [f"# Triton W4A16 candidates on {torch.cuda.get_device_name()} (fp16, G={GROUP_SIZE})\n",
             f"copy bandwidth {copy_gbs:.0f} GB/s\n"]
    for k, n in SHAPES:
        nbytes = int4_bytes(k, n, GROUP_SIZE, DTYPE, zeros=False)
        copies = copies_to_exceed_l2(nbytes, device)
        layers = [random_int4_layer(k, n, GROUP_SIZE, DTYPE, device, zeros=False, seed=s) for s in range(copies)]
        for m in DECODE_M + PREFILL_M:
            a = torch.randn((m, k), device=device, dtype=DTYPE)
            auto = choose_config(m, n, k, device)
            results = []
            for config in [auto] + candidates(m, k):
                try:
                    us = time_us(lambda i: gemm_with_config(a, layers[i].b_q, layers[i].scales, None, None, None,
                                                            config), copies, warmup=3, reps=30 if m > 16 else 60)
                except Exception as exc:
                    print(f"K={k} N={n} M={m} {config}: {type(exc).__name__}", file=sys.stderr)
                    continue
                results.append((us, config))
            auto_us = results[0][0] if results and results[0][1] is auto else float("nan")
            plain_us = next((us for us, c in results if c == PLAIN), float("nan"))
            results.sort(key=lambda r: r[0])
            lines.append(f"\n## K={k} N={n} M={m}: auto {auto} {auto_us:.1f} us; plain {plain_us:.1f} us\n")
            for us, c in results[:8]:
                gbs = nbytes / (us * 1e-6) / 1e9
                lines.append(f"- {us:8.1f} us {100 * gbs / copy_gbs:5.1f}% copy {tflops(m, k, n, us):7.1f} TFLOP/s  "
                             f"{c.kernel} bm={c.block_m} bn={c.block_n} bk={c.block_k} split={c.split_k} "
                             f"w={c.num_warps} s={c.num_stages}\n")
            print("".join(lines[-9:]), flush=True)
    return "".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compile-only", action="store_true")
    parser.add_argument("--processes", type=int, default=14)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.compile_only:
        compile_all(args.processes)
        return 0
    report = time_all()
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "tune_triton.md").write_text(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
