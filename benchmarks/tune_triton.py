"""Time candidate launch configurations of the Triton W4A16 kernels (how choose_config was tuned).

Compiling a few hundred kernel variants one after the other would take minutes, so `--compile-only`
runs each distinct kernel once in parallel worker processes (filling Triton's on-disk cache) and
the timing pass then loads them from the cache and times them one at a time on the GPU.

    python benchmarks/tune_triton.py --compile-only   # parallel warm-up
    python benchmarks/tune_triton.py [--out DIR]       # serial timing, markdown table + CSV

`--m 1 2` limits the sweep to those M; `--auto-only` times only choose_config's choice (and the
baseline's), to check a committed rule. `--baseline FILE` also times the configuration that
another version of triton_w4a16.py chooses (a copy with its op registration cut off, since the
op name can be registered once per process), so old and new kernels meet in the same run.
"""

import argparse
import importlib.util
import itertools
import multiprocessing
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import torch
import triton

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from w4a16_rdna3.bench import (  # noqa: E402
    int4_bytes,
    measure_copy_bandwidth,
    random_int4_layer,
    rotated_int4_layers,
    tflops,
    time_us,
)
from w4a16_rdna3.triton_w4a16 import TritonConfig, choose_config, gemm_with_config  # noqa: E402

SHAPES = [(4096, 14336), (14336, 4096), (5120, 27648), (4096, 4096)]  # (K, N)
DECODE_M = [1, 2, 4, 8, 16]
PREFILL_M = [256, 1024, 4096]
GROUP_SIZE = 128
DTYPE = torch.float16

# GEMV grid at M = 1: every (block_n, num_warps, block_k, split, stages, eviction) that gives each
# thread 1 to 8 loads of 16 bytes per step and 1 to 24 programs per SM.
_GEMV_BLOCK_N = [32, 64, 128, 256, 512]
_GEMV_WARPS = [2, 4, 8]
_GEMV_BLOCK_K = [64, 128, 256, 512]
_GEMV_STAGES = [1, 3]
_GEMV_EVICT = ["", "evict_first"]
_SPLITS = [1, 2, 4, 8, 16, 32, 64]
_H100_SMS = 132  # the candidate set is fixed (not device-dependent) so compile and timing passes agree
# A plain tiled kernel (no split-K, 16-row tiles): the baseline the decode paths are compared with.
PLAIN = TritonConfig("tiled", 16, 64, 128, 1, 4, 4)
# (block_m, block_n, block_k, num_warps, num_stages)
_TILED_DECODE = [(16, 64, 128, 4, 4), (16, 128, 128, 4, 4), (16, 64, 64, 4, 4), (16, 128, 64, 4, 3),
                 (16, 256, 64, 4, 3), (16, 64, 256, 4, 3)]
_TILED_PREFILL = [(128, 128, 64, 8, 3), (128, 128, 64, 4, 4), (128, 256, 64, 8, 3), (64, 128, 64, 4, 4),
                  (128, 128, 128, 8, 3), (256, 128, 64, 8, 3), (128, 64, 64, 4, 4), (64, 256, 64, 8, 3),
                  (128, 256, 32, 8, 4), (256, 64, 64, 8, 3)]


def _gemv_candidates(m: int, k: int, n: int) -> list[TritonConfig]:
    out = []
    stages, evicts = (_GEMV_STAGES, _GEMV_EVICT) if m == 1 else ([3], [""])
    for bn, w, bk, sp, s, ev in itertools.product(_GEMV_BLOCK_N, _GEMV_WARPS, _GEMV_BLOCK_K, _SPLITS, stages, evicts):
        loads_per_thread = (bk // 8) * bn / (32 * w * 4)
        programs = -(-n // bn) * sp
        if 1 <= loads_per_thread <= 8 and k // 8 // sp >= 2 * (bk // 8) and _H100_SMS <= programs <= 24 * _H100_SMS:
            out.append(TritonConfig("gemv", 1, bn, bk, sp, w, s, evict=ev))
    return out


def candidates(m: int, k: int, n: int) -> list[TritonConfig]:
    out: list[TritonConfig] = []
    if m <= 2:  # the tiled kernel was never close here (results_tune_H100.md)
        out += _gemv_candidates(m, k, n)
    elif m <= 16:
        for (bm, bn, bk, w, s) in _TILED_DECODE:
            out += [TritonConfig("tiled", bm, bn, bk, sp, w, s) for sp in _SPLITS[:5] if k // 8 // sp >= bk // 8]
    else:
        out += [TritonConfig("tiled", bm, bn, bk, 1, w, s) for (bm, bn, bk, w, s) in _TILED_PREFILL]
    return out


def _load_baseline(path: Path | None) -> ModuleType | None:
    """Another version of triton_w4a16.py as its own module (see the module docstring)."""
    if path is None:
        return None
    spec = importlib.util.spec_from_file_location("triton_w4a16_baseline", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _compile_key(m: int, config: TritonConfig) -> tuple[object, ...]:
    """What selects a compiled kernel: Triton specialises M == 1, and split or not picks IS_SPLIT."""
    return (m == 1, config.split_k > 1, config.kernel, config.block_m, config.block_n, config.block_k,
            config.num_warps, config.num_stages, config.group_m, config.evict)


def _jobs(ms: list[int], baseline: Path | None,
          auto_only: bool) -> list[tuple[int, int, int, TritonConfig | None, Path | None]]:
    """One warm-up job per compiled kernel (config None: the baseline's own choice)."""
    jobs: list[tuple[int, int, int, TritonConfig | None, Path | None]] = []
    seen = set()
    for (k, n), m in itertools.product(SHAPES, ms):
        if baseline is not None:
            jobs.append((k, n, m, None, baseline))
        auto = choose_config(m, n, k, torch.device("cuda"))
        for c in [auto] if auto_only else [auto] + candidates(m, k, n):
            if _compile_key(m, c) not in seen:
                seen.add(_compile_key(m, c))
                jobs.append((k, n, m, c, None))
    return jobs


def _warm(job: tuple[int, int, int, TritonConfig | None, Path | None]) -> str:
    k, n, m, config, baseline_path = job
    try:
        layer = random_int4_layer(k, n, GROUP_SIZE, DTYPE, torch.device("cuda"), zeros=False, seed=0)
        a = torch.randn((m, k), device="cuda", dtype=DTYPE)
        _runner(a, n, config, _load_baseline(baseline_path))(layer.b_q, layer.scales)
        torch.cuda.synchronize()
        return ""
    except Exception as exc:  # a candidate that does not compile (shared memory, registers) is skipped
        return f"{job}: {type(exc).__name__}: {str(exc)[:200]}"


def _runner(a: torch.Tensor, n: int, config: TritonConfig | None,
            baseline: ModuleType | None) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """gemm(b_q, scales) with `config`, or with the baseline's own choice when config is None."""
    if config is None:
        assert baseline is not None
        chosen = baseline.choose_config(a.shape[0], n, a.shape[1], a.device)
        return lambda b_q, scales: baseline.gemm_with_config(a, b_q, scales, None, None, None, chosen)
    return lambda b_q, scales: gemm_with_config(a, b_q, scales, None, None, None, config)


def compile_all(processes: int, ms: list[int], baseline: Path | None, auto_only: bool) -> None:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(processes) as pool:
        for err in pool.imap_unordered(_warm, _jobs(ms, baseline, auto_only), chunksize=2):
            if err:
                print("compile failed:", err, file=sys.stderr)


def _describe(c: TritonConfig) -> str:
    evict = getattr(c, "evict", "")  # a baseline's TritonConfig may predate the field
    evict = f" {evict}" if evict else ""
    return (f"{c.kernel} bm={c.block_m} bn={c.block_n} bk={c.block_k} split={c.split_k} "
            f"w={c.num_warps} s={c.num_stages}{evict}")


def time_all(ms: list[int], baseline_path: Path | None, device: torch.device, auto_only: bool) -> tuple[str, str]:
    """Markdown report (fastest 8 per shape and M, plus auto, baseline and plain) and a CSV of every timing."""
    baseline = _load_baseline(baseline_path)
    copy_gbs = measure_copy_bandwidth(device)
    lines = [f"# Triton W4A16 candidates on {torch.cuda.get_device_name(device)} (fp16, G={GROUP_SIZE})\n",
             f"torch {torch.__version__}, triton {triton.__version__}; copy bandwidth {copy_gbs:.0f} GB/s\n"]
    csv = ["k,n,m,us,pct_copy,config\n"]
    for k, n in SHAPES:
        nbytes = int4_bytes(k, n, GROUP_SIZE, DTYPE, zeros=False)
        layers = rotated_int4_layers(k, n, GROUP_SIZE, DTYPE, device, zeros=False)
        for m in ms:
            a = torch.randn((m, k), device=device, dtype=DTYPE)
            auto = choose_config(m, n, k, device)
            named: list[tuple[str, TritonConfig | None]] = [("auto", auto)]
            if baseline is not None:
                named.append(("baseline", None))
            if not auto_only:
                named += [("", c) for c in candidates(m, k, n)]
            results = []
            for name, config in named:
                run = _runner(a, n, config, baseline)
                try:
                    us = time_us(lambda i: run(layers[i].b_q, layers[i].scales), len(layers), warmup=3,
                                 reps=30 if m > 16 else 60)
                except Exception as exc:
                    print(f"K={k} N={n} M={m} {config}: {type(exc).__name__}", file=sys.stderr)
                    continue
                label = name or _describe(config)
                if name == "auto":
                    label = f"auto ({_describe(auto)})"
                elif name == "baseline":
                    label = f"baseline ({_describe(baseline.choose_config(m, n, k, device))})"
                pct = 100 * nbytes / (us * 1e-6) / 1e9 / copy_gbs
                results.append((us, pct, label, config))
                csv.append(f"{k},{n},{m},{us:.2f},{pct:.1f},{label}\n")
            lines.append(f"\n## K={k} N={n} M={m}\n")
            ranked = sorted(results, key=lambda r: r[0])
            shown = ranked[:8] + [r for r in results if r not in ranked[:8] and (r[2].startswith(("auto", "baseline"))
                                                                               or r[3] == PLAIN)]
            for us, pct, label, _ in shown:
                lines.append(f"- {us:8.2f} us {pct:5.1f}% copy {tflops(m, k, n, us):7.1f} TFLOP/s  {label}\n")
            print("".join(lines[-len(shown) - 1:]), flush=True)
    return "".join(lines), "".join(csv)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compile-only", action="store_true")
    parser.add_argument("--processes", type=int, default=14)
    parser.add_argument("--m", type=int, nargs="+", default=DECODE_M + PREFILL_M)
    parser.add_argument("--auto-only", action="store_true")
    parser.add_argument("--baseline", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.compile_only:
        compile_all(args.processes, args.m, args.baseline, args.auto_only)
        return 0
    report, csv = time_all(args.m, args.baseline, torch.device("cuda"), args.auto_only)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "tune_triton.md").write_text(report)
        (args.out / "tune_triton.csv").write_text(csv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
