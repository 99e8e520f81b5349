"""W4A16 GEMM benchmark: Triton fallback, native extension paths, dense matmul, copy limit.

One run on the available GPU times every path on the same shapes, so the ratios compare numbers
taken together. Bandwidth is counted over the int4 bytes (weights + scales + zeros + perm): the
bytes a W4A16 kernel cannot avoid reading; "% copy" relates it to a device-to-device copy measured
in the same run.

    w4a16-rdna3 bench [--quick] [--dtype float16|bfloat16] [--zeros] [--act-order] [--m M ...]
                      [--out DIR]
    python benchmarks/bench_gemm.py ...   (the same, from a checkout)

The layers are symmetric by default; --zeros adds zero points, --act-order a random perm.
"""

import argparse
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from w4a16_rdna3.bench import (
    bandwidth_limit_us,
    int4_bytes,
    measure_copy_bandwidth,
    rotated_int4_layers,
    tflops,
    time_dense_matmul_us,
    time_us,
)
from w4a16_rdna3.triton_w4a16 import gemm_triton

SHAPES = [(4096, 14336), (14336, 4096), (5120, 27648), (4096, 4096)]  # (K, N)
DECODE_M = [1, 2, 4, 8, 16]
BATCHED_M = [32, 64, 128]  # many sequences decoding at once: between decode and prefill
PREFILL_M = [256, 1024, 2048, 4096]
QUICK_SHAPES = [(4096, 14336), (14336, 4096)]
QUICK_M = [1, 8, 1024]
GROUP_SIZE = 128

GemmFn = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class Layout:
    """Which optional parts the timed layers have (dense and the copy limit ignore it)."""

    zeros: bool = False
    act_order: bool = False

    def name(self) -> str:
        parts = (["zero points"] if self.zeros else []) + (["act-order"] if self.act_order else [])
        return " + ".join(parts) or "symmetric"

    def file_tag(self) -> str:
        """'' for symmetric (the committed result files' names), else e.g. '_zeros_act_order'."""
        return ("_zeros" if self.zeros else "") + ("_act_order" if self.act_order else "")


@dataclass
class Row:
    k: int
    n: int
    m: int
    backend: str
    us: float
    gbs: float  # int4 bytes / time
    pct_copy: float  # gbs / copy bandwidth
    tflops: float
    vs_triton: float  # triton time / this time (> 1: faster than Triton; nan where Triton failed)
    vs_dense: float  # dense time / this time (> 1: faster than dense)


def _native_paths(notes: list[str]) -> dict[str, GemmFn]:
    """Native extension paths if built; each absence is noted, never an error."""
    paths: dict[str, GemmFn] = {}
    try:
        from w4a16_rdna3 import _ops
    except ImportError as exc:
        notes.append(f"native paths skipped: w4a16_rdna3._ops not importable ({exc})")
        return paths
    if _ops.native_build_info() is None:
        notes.append("native paths skipped: the native extension is not built")
        return paths

    def native(a, b_q, scales, zeros, perm, bias):
        return _ops.gemm(a, b_q, scales, zeros, perm, bias, backend="native")

    paths["native"] = native
    for op in ("gemm_dot2", "gemm_wmma"):
        if hasattr(torch.ops.w4a16_rdna3, op):
            paths[op] = getattr(torch.ops.w4a16_rdna3, op)
        else:
            notes.append(f"torch.ops.w4a16_rdna3.{op} skipped: not registered by the build")
    return paths


def _layout_bytes(k: int, n: int, dtype: torch.dtype, layout: Layout) -> int:
    return int4_bytes(k, n, GROUP_SIZE, dtype, zeros=layout.zeros, act_order=layout.act_order)


def _time_path(fn: GemmFn, m: int, k: int, n: int, dtype: torch.dtype, device: torch.device, reps: int,
               layout: Layout) -> float:
    layers = rotated_int4_layers(k, n, GROUP_SIZE, dtype, device, zeros=layout.zeros, act_order=layout.act_order)
    a = torch.randn((m, k), generator=torch.Generator(device=device).manual_seed(1), device=device).to(dtype)
    return time_us(lambda i: fn(a, layers[i].b_q, layers[i].scales, layers[i].zeros, layers[i].perm, None), len(layers),
                   reps=reps)


def run_benchmarks(
    quick: bool = False,
    dtype: torch.dtype = torch.float16,
    progress: Callable[[str], None] | None = None,
    notes: list[str] | None = None,
    layout: Layout = Layout(),
    ms: list[int] | None = None,
) -> list[Row]:
    """Time every available path; returns one Row per (shape, M, backend), copy limit included.

    `notes` (if given) receives a line for each path that was skipped and why; `ms` replaces the
    default batch sizes.
    """
    if not torch.cuda.is_available():
        raise RuntimeError("bench_gemm needs a GPU (torch.cuda.is_available() is False)")
    device = torch.device("cuda")
    notes = [] if notes is None else notes
    shapes = QUICK_SHAPES if quick else SHAPES
    if ms is None:
        ms = QUICK_M if quick else DECODE_M + BATCHED_M + PREFILL_M
    copy_gbs = measure_copy_bandwidth(device)
    notes.append(f"device-to-device copy: {copy_gbs:.0f} GB/s ({torch.cuda.get_device_name(device)})")
    paths: dict[str, GemmFn] = {"triton": gemm_triton, **_native_paths(notes)}
    rows: list[Row] = []
    for k, n in shapes:
        nbytes = _layout_bytes(k, n, dtype, layout)
        for m in ms:
            if progress is not None:
                progress(f"K={k} N={n} M={m}")
            reps = 100 if m <= 16 else 30
            times = {"dense": time_dense_matmul_us(m, k, n, dtype, device, reps=reps)}
            for name, fn in paths.items():
                try:
                    times[name] = _time_path(fn, m, k, n, dtype, device, reps, layout)
                except Exception as exc:  # any: Triton's OutOfResources, for one, is no RuntimeError
                    notes.append(f"{name} failed at K={k} N={n} M={m}: {exc}")
            times["copy limit"] = bandwidth_limit_us(nbytes, copy_gbs)
            for name, us in times.items():
                gbs = nbytes / (us * 1e-6) / 1e9
                rows.append(Row(k, n, m, name, us, gbs, 100 * gbs / copy_gbs, tflops(m, k, n, us),
                                times.get("triton", math.nan) / us, times["dense"] / us))
    return rows


def format_table(rows: list[Row]) -> str:
    head = ("| K | N | M | backend | us | GB/s (int4) | % copy BW | TFLOP/s | x Triton | x dense |\n"
            "|---:|---:|---:|:---|---:|---:|---:|---:|---:|---:|\n")
    body = "".join(
        f"| {r.k} | {r.n} | {r.m} | {r.backend} | {r.us:.1f} | {r.gbs:.0f} | {r.pct_copy:.0f}% | "
        f"{r.tflops:.1f} | {r.vs_triton:.2f} | {r.vs_dense:.2f} |\n"
        for r in rows
    )
    return head + body


def _plot(rows: list[Row], path: Path) -> bool:
    """One panel per shape: TFLOP/s vs M (log-log) per backend. False if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    shapes = sorted({(r.k, r.n) for r in rows})
    fig, axes = plt.subplots(1, len(shapes), figsize=(5 * len(shapes), 4), squeeze=False)
    for ax, (k, n) in zip(axes[0], shapes):
        for backend in dict.fromkeys(r.backend for r in rows):
            pts = [(r.m, r.tflops) for r in rows if (r.k, r.n, r.backend) == (k, n, backend)]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=backend)
        ax.set(xscale="log", yscale="log", xlabel="M", ylabel="TFLOP/s", title=f"K={k}, N={n}")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two shapes, M in {1, 8, 1024}")
    parser.add_argument("--dtype", choices=["float16", "bfloat16"], default="float16")
    parser.add_argument("--zeros", action="store_true", help="layers with zero points (default: symmetric)")
    parser.add_argument("--act-order", action="store_true", help="layers with a random act-order perm")
    parser.add_argument("--m", type=int, nargs="+", default=None, metavar="M",
                        help="batch sizes to time instead of the default list")
    parser.add_argument("--out", type=Path, default=None, help="directory for results .md and .png")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench: no GPU visible to torch; timings need a ROCm or CUDA device", file=sys.stderr)
        return 1
    if args.m is not None and min(args.m) < 1:
        parser.error(f"--m: every batch size must be at least 1, got {args.m}")
    dtype = getattr(torch, args.dtype)
    layout = Layout(zeros=args.zeros, act_order=args.act_order)
    notes: list[str] = []
    rows = run_benchmarks(args.quick, dtype, progress=lambda s: print(s, file=sys.stderr), notes=notes,
                          layout=layout, ms=args.m)
    device_name = torch.cuda.get_device_name()
    report = (f"# W4A16 GEMM on {device_name}, {args.dtype}, G={GROUP_SIZE}, {layout.name()}\n\n"
              f"torch {torch.__version__}\n\n" + "".join(f"- {line}\n" for line in notes) + "\n"
              + format_table(rows))
    print(report)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        stem = f"results_{device_name.replace(' ', '_')}_{args.dtype}{layout.file_tag()}"
        (args.out / f"{stem}.md").write_text(report)
        if not _plot(rows, args.out / f"{stem}.png"):
            print("matplotlib not installed: no plot written", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
