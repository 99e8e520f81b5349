"""The host side of the gfx1100 launches the ISA interpreter runs (tests/rdna3_isa/launches.py, from
tests/gfx11_host/launch_shim.hip), on the CPU.

The argument images must be what the compiled kernels read: as long as their code objects say
(.kernarg_segment_size), each parameter where their metadata puts it, the group divisor where the
kernels find it. The plans must cover the call: every output column and row, every K value once.
Skips, saying why, where the ISA check's clang is missing.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from rdna3_isa.launches import (
    GFX1100_WGPS, DecodePlan, GemmBuffers, GemmShape, KernelLaunch, LaunchShim, LaunchShimError, PrefillPlan,
    build_launch_shim, decode_slots, workspace_bytes,
)
from rdna3_isa.toolchain import compile_instance
from w4a16_rdna3 import isa

TOOLCHAIN, NO_TOOLCHAIN_REASON = isa.find_toolchain()
pytestmark = pytest.mark.skipif(TOOLCHAIN is None, reason=f"gfx11 launch shim test skipped: {NO_TOOLCHAIN_REASON}")

SMS = GFX1100_WGPS
# Made-up device addresses, one per buffer, so that each pointer's place in an image is known.
BUFFERS = GemmBuffers(a=0x1000_0000, b_q=0x2000_0000, scales=0x3000_0000, out=0x4000_0000, zeros=0x5000_0000,
                      bias=0x6000_0000, perm=0x7000_0000, gathered=0x8000_0000, workspace=0x9000_0000)
PLAIN = GemmBuffers(a=BUFFERS.a, b_q=BUFFERS.b_q, scales=BUFFERS.scales, out=BUFFERS.out, workspace=BUFFERS.workspace)
DOT2_ARGS_SIZE = 88  # Dot2Args: 7 pointers, m, k, n, GroupDivisor (8 bytes), rows_per_split, splits, padding
WMMA_ARGS_SIZE = 80  # WmmaGemmArgs: 7 pointers, m, n, k, k_per_split, GroupDivisor


@pytest.fixture(scope="module")
def shim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("launch_shim")


@pytest.fixture(scope="module")
def shim(shim_dir: Path) -> LaunchShim:
    return build_launch_shim(shim_dir)


def _slots(shim: LaunchShim, m: int) -> dict[int, int]:
    """Six resident blocks per WGP of every block size (what 112 VGPRs and 20 KiB of LDS give)."""
    return {warps: 6 * SMS for warps in shim.decode_block_sizes(m)}


@dataclass(frozen=True)
class KernelMetadata:
    kernarg_size: int
    args: tuple[tuple[int, int], ...]  # (offset, size) of each explicit parameter
    vgprs: int
    lds_bytes: int
    max_workgroup: int


def _kernel_metadata(asm: str) -> KernelMetadata:
    """The metadata of the one kernel of `asm`."""
    (kernel,) = isa.parse_metadata(asm)
    block = re.search(r"^\s*\.amdgpu_metadata\n(.*?)^\s*\.end_amdgpu_metadata", asm, re.S | re.M)
    assert block is not None
    args = []
    for entry in re.split(r"^      - ", block[1], flags=re.M)[1:]:  # the entries of .args
        offset = re.search(r"^(?:\s*)\.offset:\s+(\d+)", entry, re.M)
        size = re.search(r"^(?:\s*)\.size:\s+(\d+)", entry, re.M)
        assert offset and size, entry
        args.append((int(offset[1]), int(size[1])))
    kernarg_size = re.search(r"\.kernarg_segment_size:\s+(\d+)", block[1])
    assert kernarg_size is not None
    return KernelMetadata(int(kernarg_size[1]), tuple(args), int(kernel[".vgpr_count"]),
                          int(kernel[".group_segment_fixed_size"]), int(kernel[".max_flat_workgroup_size"]))


@pytest.fixture(scope="module")
def compiled(shim: LaunchShim, tmp_path_factory: pytest.TempPathFactory) -> dict[str, KernelMetadata]:
    """Metadata of every kernel the calls of _calls launch, compiled for gfx1100 one per translation unit."""
    assert TOOLCHAIN is not None
    kernels = sorted({launch.kernel for _, launches in _calls(shim) for launch in launches})
    work = tmp_path_factory.mktemp("launch_kernels")

    def compile_one(kernel: str) -> KernelMetadata:
        return _kernel_metadata(compile_instance(TOOLCHAIN, kernel, work))

    with ThreadPoolExecutor() as pool:
        return dict(zip(kernels, pool.map(compile_one, kernels)))


def _calls(shim: LaunchShim) -> list[tuple[GemmShape, list[KernelLaunch]]]:
    """Calls that launch every kind of kernel: act-order decode with forced splits, and prefill
    split (K = 4096 with the small tile) and not."""
    decode = GemmShape(m=4, n=4096, k=4096, group_size=128, bf16=True)
    small = GemmShape(m=17, n=4096, k=4096, group_size=128, bf16=False)
    large = GemmShape(m=1024, n=4096, k=4096, group_size=128, bf16=True)
    return [
        (decode, shim.decode_launches(decode, BUFFERS, SMS, _slots(shim, decode.m), splits=3)),
        (small, shim.prefill_launches(small, PLAIN, SMS)),
        (large, shim.prefill_launches(large, BUFFERS, SMS)),
    ]


def _field(image: bytes, offset: int, size: int) -> int:
    return int.from_bytes(image[offset:offset + size], "little")


def test_images_are_as_long_as_the_kernels_arguments(shim: LaunchShim, compiled: dict[str, KernelMetadata]) -> None:
    kinds = set()
    for _, launches in _calls(shim):
        for launch in launches:
            meta = compiled[launch.kernel]
            kinds.add(launch.kernel.split("<")[0])
            assert len(launch.kernarg) == meta.kernarg_size, launch.kernel
            assert launch.block_threads <= meta.max_workgroup, f"{launch.kernel}: block beyond its launch bounds"
    assert len(kinds) == 4, f"every kind of kernel launched: {sorted(kinds)}"
    dot2 = next(m for k, m in compiled.items() if "gemm_dot2_kernel" in k)
    wmma = next(m for k, m in compiled.items() if "gemm_wmma_kernel" in k)
    assert dot2.args == ((0, DOT2_ARGS_SIZE),) and wmma.args == ((0, WMMA_ARGS_SIZE),)


def test_parameters_sit_where_the_kernels_read_them(shim: LaunchShim, compiled: dict[str, KernelMetadata]) -> None:
    """The reduction's and the gather's parameters, at their metadata offsets, hold the call's values."""
    (shape, (gather, _, reduce)), _, _ = _calls(shim)
    expected = {
        gather.kernel: (BUFFERS.a, BUFFERS.perm, shape.m, shape.k, BUFFERS.gathered),
        reduce.kernel: (BUFFERS.workspace, 3, shape.m, shape.n, BUFFERS.bias, BUFFERS.out),  # 3 splits: forced
    }
    for launch in (gather, reduce):
        args = compiled[launch.kernel].args
        assert tuple(_field(launch.kernarg, offset, size) for offset, size in args) == expected[launch.kernel]


def _group_of(image: bytes, offset: int, k: int) -> int:
    """k / G as the kernels compute it, from the GroupDivisor at `offset` (group_divisor.cuh)."""
    magic, shift = struct.unpack_from("<Ii", image, offset)
    return (k * magic >> 32) >> shift


@pytest.mark.parametrize(("k", "group_size"), [(4096, 32), (4096, 128), (3840, 96), (12288, 12288), (256, 256)])
def test_structs_hold_the_call_and_its_group_divisor(shim: LaunchShim, k: int, group_size: int) -> None:
    decode = GemmShape(m=2, n=256, k=k, group_size=group_size, bf16=False)
    (dot2,) = shim.decode_launches(decode, PLAIN, SMS, _slots(shim, decode.m), splits=1)
    prefill = GemmShape(m=40, n=256, k=k, group_size=group_size, bf16=False)
    wmma = shim.prefill_launches(prefill, PLAIN, SMS)[0]
    plan = shim.prefill_plan(prefill.m, prefill.n, prefill.k, SMS)
    # Dot2Args: a, b_q, scales, zeros, bias, partial, out; m, k, n; group; rows_per_split, splits.
    assert struct.unpack_from("<7Q3i", dot2.kernarg) == (
        PLAIN.a, PLAIN.b_q, PLAIN.scales, 0, 0, 0, PLAIN.out, decode.m, k, decode.n)
    assert struct.unpack_from("<2i", dot2.kernarg, 76) == (k // 8, 1)
    # WmmaGemmArgs: a, b_q, scales, zeros, bias, out, partial; m, n, k, k_per_split; group.
    partial = PLAIN.workspace if plan.splits > 1 else 0
    assert struct.unpack_from("<7Q4i", wmma.kernarg) == (
        PLAIN.a, PLAIN.b_q, PLAIN.scales, 0, 0, PLAIN.out, partial, prefill.m, prefill.n, k, plan.k_per_split)
    edges = {edge + d for edge in range(0, k + 1, group_size) for d in (-1, 0, 1)}
    for index in sorted({*range(0, k, 7), *edges} & set(range(k))):
        assert _group_of(dot2.kernarg, 68, index) == index // group_size, f"decode: K index {index}"
        assert _group_of(wmma.kernarg, 72, index) == index // group_size, f"prefill: K index {index}"


def _check_decode(plan: DecodePlan, m: int, n: int, k: int) -> None:
    assert plan.rows == min(r for r in (1, 2, 4, 8, 16) if r >= min(m, 16))
    assert (plan.row_tiles - 1) * plan.rows < m <= plan.row_tiles * plan.rows
    assert (plan.col_tiles - 1) * plan.cols_per_block < n <= plan.col_tiles * plan.cols_per_block
    assert plan.rows_per_split % plan.warps == 0 and plan.block_threads == 32 * plan.warps
    # Every b_q row (8 K values) in one split, no split empty.
    assert (plan.splits - 1) * plan.rows_per_split * 8 < k <= plan.splits * plan.rows_per_split * 8
    assert plan.uses_workspace == (plan.splits > 1)


@pytest.mark.parametrize("m", [1, 2, 3, 5, 8, 9, 16, 40])
@pytest.mark.parametrize(("n", "k"), [(8, 256), (4096, 4096), (14336, 4096), (4096, 14336), (136, 12288)])
def test_decode_plans_cover_the_call(shim: LaunchShim, m: int, n: int, k: int) -> None:
    plan = shim.decode_plan(m, n, k, SMS, _slots(shim, m))
    _check_decode(plan, m, n, k)
    for forced in (1, 2, 3, 5, 16):
        forced_plan = shim.decode_plan(m, n, k, SMS, _slots(shim, m), splits=forced)
        _check_decode(forced_plan, m, n, k)
        assert 1 <= forced_plan.splits <= forced
    if k == 4096:
        assert shim.decode_plan(m, n, k, SMS, _slots(shim, m), splits=4).splits == 4
    launches = shim.decode_launches(GemmShape(m, n, k, k, False), PLAIN, SMS, _slots(shim, m))
    assert launches[0].grid == (plan.col_tiles, plan.splits, plan.row_tiles)
    assert launches[0].block_threads == plan.block_threads
    assert len(launches) == (2 if plan.splits > 1 else 1)
    if plan.splits > 1:
        assert launches[1].grid[0] * launches[1].block_threads >= m * n


def test_decode_slots_from_the_kernels_figures(shim: LaunchShim, compiled: dict[str, KernelMetadata]) -> None:
    # 112 VGPRs (120 allocated: 12 waves a SIMD) and 20 KiB of LDS (6 blocks a WGP: 12 waves a SIMD):
    # 6 blocks of 8 waves a WGP. 40000 bytes of LDS: 3 blocks. 256 VGPRs (264: 5 waves a SIMD), 64 KiB
    # of LDS (2 blocks, 8 waves a SIMD): one block of 16 waves.
    assert decode_slots({8: (112, 20480)}) == {8: 6 * SMS}
    assert decode_slots({8: (24, 40000), 16: (256, 65536)}) == {8: 3 * SMS, 16: SMS}
    with pytest.raises(LaunchShimError, match="no entry for blocks of 8 waves"):
        shim.decode_plan(1, 4096, 4096, SMS, {4: SMS})
    (shape, launches), _, _ = _calls(shim)
    meta = compiled[launches[1].kernel]
    slots = decode_slots({w: (meta.vgprs, meta.lds_bytes) for w in shim.decode_block_sizes(shape.m)})
    _check_decode(shim.decode_plan(shape.m, shape.n, shape.k, SMS, slots), shape.m, shape.n, shape.k)


# (M, N) -> the tile gemm_wmma.cu takes: large from M = 128 where its 128 x 128 blocks give each of
# the 48 WGPs one, medium above M = 32, small below.
TILES = {(16, 4096): "WmmaTileSmall", (32, 4096): "WmmaTileSmall", (33, 4096): "WmmaTileMedium",
         (128, 4096): "WmmaTileMedium", (256, 4096): "WmmaTileLarge", (128, 14336): "WmmaTileLarge",
         (4096, 8): "WmmaTileMedium", (8192, 8): "WmmaTileLarge"}


@pytest.mark.parametrize(("m", "n"), sorted(TILES))
@pytest.mark.parametrize("k", [64, 4104, 14336])
def test_prefill_plans_cover_the_call(shim: LaunchShim, m: int, n: int, k: int) -> None:
    plan: PrefillPlan = shim.prefill_plan(m, n, k, SMS)
    assert plan.tile == TILES[m, n]
    assert (plan.row_tiles - 1) * plan.bm < m <= plan.row_tiles * plan.bm
    assert (plan.col_tiles - 1) * plan.bn < n <= plan.col_tiles * plan.bn
    assert plan.k_per_split % plan.bk == 0
    assert (plan.splits - 1) * plan.k_per_split < k <= plan.splits * plan.k_per_split
    launches = shim.prefill_launches(GemmShape(m, n, k, 8, False), PLAIN, SMS)
    assert launches[0].grid == (plan.col_tiles, plan.row_tiles, plan.splits)
    assert launches[0].block_threads == plan.threads
    assert len(launches) == (2 if plan.splits > 1 else 1)
    assert workspace_bytes(plan, m, n) == (plan.splits * m * n * 4 if plan.splits > 1 else 0)
    if plan.splits > 1:
        assert launches[1].kernel == "w4a16::split_k_reduce_kernel<false>"
        assert launches[1].grid[0] * launches[1].block_threads >= m * n


def test_gemm_takes_the_kernels_the_op_takes(shim: LaunchShim) -> None:
    def kernels(m: int, group_size: int, buffers: GemmBuffers = BUFFERS) -> list[str]:
        shape = GemmShape(m=m, n=4096, k=4096, group_size=group_size, bf16=False)
        return [launch.kernel.split("<")[0] for launch in shim.gemm_launches(shape, buffers, SMS, _slots(shim, m))]

    assert kernels(16, 128) == ["w4a16::gather_columns_kernel", "w4a16::dot2::gemm_dot2_kernel",
                                "w4a16::split_k_reduce_kernel"]
    assert kernels(17, 128)[1] == "w4a16::gemm_wmma_kernel"
    assert kernels(1, 16)[1] == "w4a16::gemm_wmma_kernel", "the decode kernel takes no group of 16"
    assert kernels(1, 4096, PLAIN)[0] == "w4a16::dot2::gemm_dot2_kernel"
    assert kernels(0, 128) == []
    # The act-order GEMM reads the gathered activations.
    shape = GemmShape(m=2, n=4096, k=4096, group_size=128, bf16=False)
    gemm = shim.gemm_launches(shape, BUFFERS, SMS, _slots(shim, shape.m))[1]
    assert _field(gemm.kernarg, 0, 8) == BUFFERS.gathered
    with pytest.raises(LaunchShimError, match="needs a workspace"):
        shim.decode_launches(shape, GemmBuffers(a=1, b_q=2, scales=3, out=4), SMS, _slots(shim, 2), splits=2)
    with pytest.raises(LaunchShimError, match="group sizes"):
        shim.decode_launches(GemmShape(1, 4096, 4096, 16, False), PLAIN, SMS, _slots(shim, 1))


def test_shim_needs_no_hip_runtime(shim: LaunchShim, shim_dir: Path) -> None:
    nm = next((shutil.which(tool) for tool in ("nm", "llvm-nm-19", "llvm-nm") if shutil.which(tool)), None)
    if nm is None:
        pytest.skip("no nm to list the shim's undefined symbols")
    undefined = subprocess.run([nm, "-u", str(shim_dir / "launch_shim.so")], capture_output=True, text=True, check=True)
    assert not [line for line in undefined.stdout.splitlines() if "hip" in line.lower()], undefined.stdout
