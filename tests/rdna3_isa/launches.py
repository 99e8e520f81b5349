"""The kernel launches one `gemm` call makes on a gfx1100, host side: which kernel, which grid and
block, and the bytes of its kernel arguments.

The plans (row tile, block size, K splits, WMMA tile) and the argument structs come from the
project's own host code: tests/gfx11_host/launch_shim.hip compiles the launchers' plan headers
host-only against a hipified copy of csrc/, and this module loads it with ctypes. What stays here is
the order of the launches (ops.cpp run: the act-order gather, then the GEMM kernel, then the K-split
reduction where the splits meet in the workspace) and their grids as the launchers write them.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from rdna3_isa.toolchain import ARCH
from w4a16_rdna3 import hip_host, isa
from w4a16_rdna3.hipify_csrc import hipify_csrc

SHIM = Path(__file__).resolve().parents[1] / "gfx11_host" / "launch_shim.hip"
# The multiprocessor count HIP reports for an RX 7900 XTX: WGPs, four SIMDs each (split_k_launch.h).
GFX1100_WGPS = 48

_KERNEL_INSTANCES = frozenset(inst for source in isa.KERNEL_SOURCES for inst in source.instances)


class LaunchShimError(RuntimeError):
    """The shim could not be built, or a call asks for what the product would refuse."""


@dataclass(frozen=True)
class KernelLaunch:
    kernel: str  # the instance as isa.KERNEL_SOURCES spells it
    grid: tuple[int, int, int]  # workgroups along x, y, z
    block_threads: int
    kernarg: bytes


@dataclass(frozen=True)
class GemmShape:
    m: int
    n: int
    k: int
    group_size: int  # K / scales rows (K: channelwise)
    bf16: bool


@dataclass(frozen=True)
class GemmBuffers:
    """Device addresses of a call's buffers. None: absent (a null pointer where the kernel takes one)."""

    a: int
    b_q: int
    scales: int
    out: int
    zeros: int | None = None
    bias: int | None = None
    perm: int | None = None  # act-order: int32 [K]
    gathered: int | None = None  # with perm: [M, K] of a's dtype, a[:, perm]
    workspace: int | None = None  # where the plan's splits meet in it: workspace_bytes(plan, m, n)


@dataclass(frozen=True)
class DecodePlan:
    rows: int  # the row tile (kRows)
    tile_warps: int  # its block sizes: tile_warps, tile_warps / 2, ... tile_min_warps
    tile_min_warps: int
    cols_per_block: int
    warps: int  # the block size taken
    block_threads: int
    col_tiles: int  # grid x
    row_tiles: int  # grid z
    splits: int  # grid y
    rows_per_split: int  # b_q rows (8 K values each) of a split
    uses_workspace: bool  # the splits meet in an fp32 [splits, M, N] workspace (split_k_reduce_kernel)


@dataclass(frozen=True)
class PrefillPlan:
    tile: str  # WmmaTileSmall, WmmaTileMedium or WmmaTileLarge
    bm: int
    bn: int
    bk: int
    threads: int
    col_tiles: int  # grid x
    row_tiles: int  # grid y
    splits: int  # grid z
    tiles_per_split: int  # K tiles of kBK of a split

    @property
    def k_per_split(self) -> int:
        return self.tiles_per_split * self.bk

    @property
    def uses_workspace(self) -> bool:
        return self.splits > 1


def workspace_bytes(plan: DecodePlan | PrefillPlan, m: int, n: int) -> int:
    """The fp32 [splits, M, N] workspace the launcher allocates for `plan`; 0 where it takes none."""
    return plan.splits * m * n * 4 if plan.uses_workspace else 0


def decode_slots(figures: Mapping[int, tuple[int, int]], wgps: int = GFX1100_WGPS) -> dict[int, int]:
    """Slots (resident blocks on the device) per decode block size, from each size's kernel figures:
    warps -> (VGPRs, LDS bytes) as its code object metadata gives them.

    A block of W waves spreads over a WGP's four SIMDs, so a WGP holds waves_per_simd x 4 / W of them
    (isa.waves_per_simd: VGPR file, 16 waves a SIMD, 128 KiB of LDS a WGP). At least one, as the
    launcher counts a failed occupancy query (gemm_dot2_plan.h blocks_per_sm).
    """
    slots = {}
    for warps, (vgprs, lds_bytes) in figures.items():
        waves = isa.waves_per_simd(ARCH, vgprs, lds_bytes, warps * isa.WAVE_SIZE)
        slots[warps] = wgps * max(1, waves * isa.SIMDS_PER_WGP // warps)
    return slots


class _Constants(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int64) for name in (
        "dot2_max_m", "dot2_group_multiple", "dot2_max_rows", "split_k_reduce_threads",
        "gather_threads", "gather_rows_per_block", "gather_k_per_block")]


class _DecodePlan(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int64) for name in (
        "rows", "tile_warps", "tile_min_warps", "cols_per_block", "warps", "block_threads",
        "col_tiles", "row_tiles", "splits", "rows_per_split", "uses_workspace")]


class _PrefillPlan(ctypes.Structure):
    _fields_ = [("tile", ctypes.c_char_p)] + [(name, ctypes.c_int64) for name in (
        "bm", "bn", "bk", "threads", "col_tiles", "row_tiles", "splits", "tiles_per_split")]


_U64, _INT, _I64 = ctypes.c_uint64, ctypes.c_int, ctypes.c_int64
_SIGNATURES = {
    "launch_constants": (None, [ctypes.POINTER(_Constants)]),
    "dot2_args_size": (ctypes.c_size_t, []),
    "dot2_args": (None, [_U64] * 7 + [_INT] * 6 + [ctypes.c_char_p]),
    "dot2_row_tile": (None, [_I64, ctypes.POINTER(_DecodePlan)]),
    "dot2_plan": (_I64, [_I64] * 4 + [ctypes.POINTER(_I64)] * 2 + [_I64] * 2 + [ctypes.POINTER(_DecodePlan)]),
    "wmma_args_size": (ctypes.c_size_t, []),
    "wmma_args": (None, [_U64] * 7 + [_INT] * 5 + [ctypes.c_char_p]),
    "wmma_plan": (None, [_I64] * 4 + [ctypes.POINTER(_PrefillPlan)]),
    "split_k_reduce_args_size": (ctypes.c_size_t, []),
    "split_k_reduce_args": (None, [_U64, _INT, _INT, _INT, _U64, _U64, ctypes.c_char_p]),
    "gather_columns_args_size": (ctypes.c_size_t, []),
    "gather_columns_args": (None, [_U64, _U64, _INT, _INT, _U64, ctypes.c_char_p]),
}


def _ceil_div(x: int, y: int) -> int:
    return -(-x // y)


def _address(address: int | None) -> int:
    return 0 if address is None else address


def _cpp_bool(value: bool) -> str:
    return "true" if value else "false"


def _check_sizes(m: int, n: int, k: int) -> None:
    # The launchers never plan an empty call (ops.cpp returns first); the plans divide by M and K.
    if min(m, n, k) <= 0:
        raise LaunchShimError(f"no plan for M, N, K = {m}, {n}, {k}: the launchers plan non-empty calls only")


def _isa_instance(kernel: str) -> str:
    """`kernel`, checked to be spelled as isa.KERNEL_SOURCES spells an instance."""
    if kernel not in _KERNEL_INSTANCES:
        raise LaunchShimError(f"{kernel} is not an instance of isa.KERNEL_SOURCES: the launchers and the ISA check "
                              "disagree on the kernels")
    return kernel


class LaunchShim:
    """The loaded shim (build_launch_shim) and the launches it makes of the project's host code."""

    def __init__(self, library: ctypes.CDLL) -> None:
        self._lib = library
        for name, (restype, argtypes) in _SIGNATURES.items():
            function = getattr(library, name)
            function.restype, function.argtypes = restype, argtypes
        constants = _Constants()
        library.launch_constants(ctypes.byref(constants))
        self._constants = constants

    # --- argument images: `a` is buffers.a or the act-order gather's output ---

    def _dot2_args(self, buffers: GemmBuffers, shape: GemmShape, a: int, partial: int, rows_per_split: int,
                   splits: int) -> bytes:
        image = ctypes.create_string_buffer(self._lib.dot2_args_size())
        self._lib.dot2_args(a, buffers.b_q, buffers.scales, _address(buffers.zeros), _address(buffers.bias), partial,
                            buffers.out, shape.m, shape.k, shape.n, shape.group_size, rows_per_split, splits, image)
        return image.raw

    def _wmma_args(self, buffers: GemmBuffers, shape: GemmShape, a: int, partial: int, k_per_split: int) -> bytes:
        image = ctypes.create_string_buffer(self._lib.wmma_args_size())
        self._lib.wmma_args(a, buffers.b_q, buffers.scales, _address(buffers.zeros), _address(buffers.bias),
                            buffers.out, partial, shape.m, shape.n, shape.k, k_per_split, shape.group_size, image)
        return image.raw

    def _split_k_reduce_args(self, partial: int, splits: int, m: int, n: int, bias: int, out: int) -> bytes:
        image = ctypes.create_string_buffer(self._lib.split_k_reduce_args_size())
        self._lib.split_k_reduce_args(partial, splits, m, n, bias, out, image)
        return image.raw

    def _gather_columns_args(self, a: int, perm: int, m: int, k: int, gathered: int) -> bytes:
        image = ctypes.create_string_buffer(self._lib.gather_columns_args_size())
        self._lib.gather_columns_args(a, perm, m, k, gathered, image)
        return image.raw

    # --- plans ---

    def decode_block_sizes(self, m: int) -> tuple[int, ...]:
        """The block sizes (waves) the decode plan asks slots for at M rows: the keys `slots` needs."""
        tile = _DecodePlan()
        self._lib.dot2_row_tile(m, ctypes.byref(tile))
        sizes = [tile.tile_warps]
        while sizes[-1] > tile.tile_min_warps:
            sizes.append(sizes[-1] // 2)
        return tuple(sizes)

    def decode_plan(self, m: int, n: int, k: int, sms: int, slots: Mapping[int, int],
                    splits: int | None = None) -> DecodePlan:
        """gemm_dot2's plan on `sms` WGPs with slots[warps] resident blocks of each block size
        (decode_slots); `splits` forces that many K splits, as the decode tuner does."""
        _check_sizes(m, n, k)
        warps = (_I64 * len(slots))(*slots.keys())
        counts = (_I64 * len(slots))(*slots.values())
        plan = _DecodePlan()
        missing = self._lib.dot2_plan(m, n, k, sms, warps, counts, len(slots), splits or 0, ctypes.byref(plan))
        if missing:
            raise LaunchShimError(f"slots has no entry for blocks of {missing} waves (decode_block_sizes({m}))")
        return DecodePlan(
            rows=plan.rows, tile_warps=plan.tile_warps, tile_min_warps=plan.tile_min_warps,
            cols_per_block=plan.cols_per_block, warps=plan.warps, block_threads=plan.block_threads,
            col_tiles=plan.col_tiles, row_tiles=plan.row_tiles, splits=plan.splits,
            rows_per_split=plan.rows_per_split, uses_workspace=bool(plan.uses_workspace),
        )

    def prefill_plan(self, m: int, n: int, k: int, sms: int) -> PrefillPlan:
        """gemm_wmma's tile and plan on `sms` WGPs."""
        _check_sizes(m, n, k)
        plan = _PrefillPlan()
        self._lib.wmma_plan(m, n, k, sms, ctypes.byref(plan))
        return PrefillPlan(
            tile=plan.tile.decode(), bm=plan.bm, bn=plan.bn, bk=plan.bk, threads=plan.threads,
            col_tiles=plan.col_tiles, row_tiles=plan.row_tiles, splits=plan.splits,
            tiles_per_split=plan.tiles_per_split,
        )

    def decode_takes_group(self, shape: GemmShape) -> bool:
        """Whether the decode kernel takes the group size (ops.cpp dot2_takes_group)."""
        return shape.group_size == shape.k or shape.group_size % self._constants.dot2_group_multiple == 0

    def takes_decode(self, shape: GemmShape) -> bool:
        """Whether the gemm op takes the decode kernel (ops.cpp gemm)."""
        return shape.m <= self._constants.dot2_max_m and self.decode_takes_group(shape)

    def gemm_plan(self, shape: GemmShape, sms: int, slots: Mapping[int, int],
                  decode_splits: int | None = None) -> DecodePlan | PrefillPlan:
        """The plan of the kernel the gemm op takes for `shape`."""
        if self.takes_decode(shape):
            return self.decode_plan(shape.m, shape.n, shape.k, sms, slots, decode_splits)
        return self.prefill_plan(shape.m, shape.n, shape.k, sms)

    # --- launches ---

    def launches(self, shape: GemmShape, buffers: GemmBuffers, plan: DecodePlan | PrefillPlan) -> list[KernelLaunch]:
        """The launches of one call on `plan` (ops.cpp run): the act-order gather where buffers.perm is
        given; the GEMM kernel; the K-split reduction where the splits meet in the workspace."""
        launches: list[KernelLaunch] = []
        a = buffers.a
        if buffers.perm is not None:
            if buffers.gathered is None:
                raise LaunchShimError("act-order (perm) needs the gathered [M, K] buffer")
            launches.append(self._gather(shape, buffers.a, buffers.perm, buffers.gathered))
            a = buffers.gathered
        partial = 0
        if plan.uses_workspace:
            if buffers.workspace is None:
                raise LaunchShimError(f"the plan splits K {plan.splits} ways: it needs a workspace of "
                                      f"{workspace_bytes(plan, shape.m, shape.n)} bytes")
            partial = buffers.workspace
        if isinstance(plan, DecodePlan):
            launches.append(self._decode(shape, buffers, plan, a, partial))
        else:
            launches.append(self._prefill(shape, buffers, plan, a, partial))
        if plan.uses_workspace:
            launches.append(self._reduce(shape, buffers, plan.splits, partial))
        return launches

    def decode_launches(self, shape: GemmShape, buffers: GemmBuffers, sms: int, slots: Mapping[int, int],
                        splits: int | None = None) -> list[KernelLaunch]:
        """The launches of the gemm_dot2 op (which refuses group sizes the decode kernel cannot take)."""
        if not self.decode_takes_group(shape):
            raise LaunchShimError(f"gemm_dot2 takes group sizes that are multiples of "
                                  f"{self._constants.dot2_group_multiple} or K, not {shape.group_size}")
        if shape.m == 0:
            return []
        return self.launches(shape, buffers, self.decode_plan(shape.m, shape.n, shape.k, sms, slots, splits))

    def prefill_launches(self, shape: GemmShape, buffers: GemmBuffers, sms: int) -> list[KernelLaunch]:
        """The launches of the gemm_wmma op."""
        if shape.m == 0:
            return []
        return self.launches(shape, buffers, self.prefill_plan(shape.m, shape.n, shape.k, sms))

    def gemm_launches(self, shape: GemmShape, buffers: GemmBuffers, sms: int, slots: Mapping[int, int],
                      decode_splits: int | None = None) -> list[KernelLaunch]:
        """The launches of the gemm op: decode or prefill as it picks; none at M = 0."""
        if shape.m == 0:
            return []
        return self.launches(shape, buffers, self.gemm_plan(shape, sms, slots, decode_splits))

    def _decode_instance(self, rows: int, warps: int, tile_warps: int, tile_min_warps: int, bf16: bool,
                         has_zeros: bool) -> str:
        # The row tile and block size as isa.DECODE_ROW_TILES and KERNEL_SOURCES spell them.
        row_tile = "w4a16::dot2::kMaxRows" if rows == self._constants.dot2_max_rows else str(rows)
        if warps not in (tile_warps, tile_min_warps):
            raise LaunchShimError(f"decode blocks of {warps} waves have no instance in isa.KERNEL_SOURCES")
        size = "kWarps" if warps == tile_warps else "kMinWarps"
        return _isa_instance(f"w4a16::dot2::gemm_dot2_kernel<{_cpp_bool(bf16)}, {_cpp_bool(has_zeros)}, "
                             f"{row_tile}, w4a16::dot2::Tile<{row_tile}>::{size}>")

    def decode_instances(self, m: int, bf16: bool, has_zeros: bool) -> dict[int, str]:
        """The decode kernel instance of each block size (waves) the plan weighs at M rows: the kernels
        whose registers and LDS give the plan's slots (decode_slots)."""
        tile = _DecodePlan()
        self._lib.dot2_row_tile(m, ctypes.byref(tile))
        return {warps: self._decode_instance(tile.rows, warps, tile.tile_warps, tile.tile_min_warps, bf16, has_zeros)
                for warps in self.decode_block_sizes(m)}

    def _decode(self, shape: GemmShape, buffers: GemmBuffers, plan: DecodePlan, a: int, partial: int) -> KernelLaunch:
        kernel = self._decode_instance(plan.rows, plan.warps, plan.tile_warps, plan.tile_min_warps, shape.bf16,
                                       buffers.zeros is not None)
        # launch_planned: x = column tiles, y = K splits, z = row tiles.
        return KernelLaunch(kernel, (plan.col_tiles, plan.splits, plan.row_tiles), plan.block_threads,
                            self._dot2_args(buffers, shape, a, partial, plan.rows_per_split, plan.splits))

    def _prefill(self, shape: GemmShape, buffers: GemmBuffers, plan: PrefillPlan, a: int,
                 partial: int) -> KernelLaunch:
        kernel = (f"w4a16::gemm_wmma_kernel<w4a16::{plan.tile}, {_cpp_bool(shape.bf16)}, "
                  f"{_cpp_bool(buffers.zeros is not None)}>")
        # launch_planned: x = column tiles, y = row tiles, z = K splits.
        return KernelLaunch(_isa_instance(kernel), (plan.col_tiles, plan.row_tiles, plan.splits), plan.threads,
                            self._wmma_args(buffers, shape, a, partial, plan.k_per_split))

    def _reduce(self, shape: GemmShape, buffers: GemmBuffers, splits: int, partial: int) -> KernelLaunch:
        # launch_split_k_reduce (split_k_launch.h): one thread per output.
        threads = self._constants.split_k_reduce_threads
        kernel = f"w4a16::split_k_reduce_kernel<{_cpp_bool(shape.bf16)}>"
        return KernelLaunch(_isa_instance(kernel), (_ceil_div(shape.m * shape.n, threads), 1, 1), threads,
                            self._split_k_reduce_args(partial, splits, shape.m, shape.n, _address(buffers.bias),
                                                      buffers.out))

    def _gather(self, shape: GemmShape, a: int, perm: int, gathered: int) -> KernelLaunch:
        # launch_gather_columns (gather_columns_launch.h): x = blocks of rows, y = blocks of K indices.
        c = self._constants
        kernel = f"w4a16::gather_columns_kernel<{_cpp_bool(shape.bf16)}>"
        grid = (_ceil_div(shape.m, c.gather_rows_per_block), _ceil_div(shape.k, c.gather_k_per_block), 1)
        return KernelLaunch(_isa_instance(kernel), grid, c.gather_threads,
                            self._gather_columns_args(a, perm, shape.m, shape.k, gathered))


def build_launch_shim(build_dir: Path) -> LaunchShim:
    """Hipify a copy of csrc/ into `build_dir`, compile the shim against it (build_dir/launch_shim.so)
    and load it.

    Raises LaunchShimError where no clang with the AMDGPU target and HIP headers is found
    (isa.find_toolchain) or the compile fails.
    """
    toolchain, reason = isa.find_toolchain()
    if toolchain is None:
        raise LaunchShimError(reason)
    csrc = build_dir / "csrc"
    if csrc.exists():
        shutil.rmtree(csrc)
    shutil.copytree(isa.CSRC, csrc)
    with contextlib.redirect_stderr(io.StringIO()):  # hipify reports its success on stderr
        hipify_csrc(csrc)
    library = build_dir / "launch_shim.so"
    command = [*hip_host.host_compile_command(toolchain.clang, ARCH, csrc), "-fPIC", "-shared", "-o", str(library),
               str(SHIM)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise LaunchShimError(f"{' '.join(command)}\n{result.stderr}")
    return LaunchShim(ctypes.CDLL(str(library)))
