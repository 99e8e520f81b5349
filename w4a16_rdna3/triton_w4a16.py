"""The fallback W4A16 GEMM in Triton: every device where the native RDNA3 build does not run.

Weights are in the kernel layout (DESIGN.md): `b_q` int32 [K/8, N], nibble i of b_q[r, c] is
q[8r + i, c]; `scales` [K/G, N]; `zeros` int32 [K/G, N/8] packed along N holding the true zero
(None = 8); `perm` int32 [K] or None (the kernel reads a[:, perm]); `bias` [N] or None.

Two kernels share one dequantisation and one epilogue:

* `_gemv_kernel` (decode, M <= 2): no tensor cores, one row of `a` per program. Each program
  streams [BLOCK_K/8, BLOCK_N] tiles of packed words down its K range, spread over all its warps,
  and keeps a same-shaped fp32 accumulator, so the eight nibbles of a word, their scale and the K
  reduction stay inside one thread until a single cross-warp sum at the end. At M = 1 the work is
  pure weight streaming: tall tiles (64 packed rows by 32 columns over 4 warps, 16 words per
  thread per step) keep many loads in flight, and a small split-K (1 to 4 on the benchmark
  shapes) brings the program count to a few per SM.
* `_tiled_kernel` (M > 2): tensor-core `tl.dot` on a dequantised [BLOCK_K, BLOCK_N] tile, with
  split-K for decode-sized M.

Act-order activations are first gathered into the weights' K order (`_gather_columns_kernel`, once
per call; an entry of `perm` outside [0, K) gives NaN), so both kernels load `a` in contiguous rows:
gathering through `perm` in every tile took 7-14x longer at M >= 128 on an H200 (fp16), and the
GEMV's own gather 25.0 against 16.6 us symmetric at M = 1 on (4096, 14336).

Split-K never uses atomics: each split writes fp32 partial sums to its own slice of a workspace,
and `_splitk_reduce_kernel` adds the slices in a fixed order (split 0, 1, 2, ...), so the same
inputs give bitwise the same output on every run.

Dequantisation (`_nibble_minus_zero`): a nibble masked in place and OR-ed into the bits of 2^23
is an exact fp32 2^23 + q * 2^s; subtracting 2^23 + zero * 2^s leaves (q - zero) * 2^s exactly.
One logic op and one add per weight, no int->float conversion; the power of two is undone on the
activation (GEMV) or the scale (tiled), once per K value or column, not per weight.

Under `TRITON_INTERPRET=1` (CPU tests), triton 3.9's interpreter keeps bf16 values as raw uint16
bits and feeds them to `np.matmul` and to arithmetic unchanged (only casts to/from fp32 convert
the bits; triton-lang/triton#11584), so any `tl.dot` or arithmetic on bf16 operands computes
garbage there; its fp32 -> bf16 cast also truncates where a GPU rounds to nearest. Casts are
right otherwise, and `_gemv_kernel` casts every bf16 load to fp32 before any math (as it does on
a GPU), so it runs in the interpreter in both dtypes; `_tiled_kernel` must feed bf16 to `tl.dot`
to use the tensor cores, so it is tested in bf16 on a GPU only.
"""

import functools
from dataclasses import dataclass, replace
from typing import Literal

import torch
import triton
import triton.language as tl
from triton.runtime.interpreter import InterpretedFunction

from w4a16_rdna3._ops import gemm_fake
from w4a16_rdna3.checks import PACK_FACTOR, GemmShape, check_gemm_args

_FP32_2POW23_BITS = 0x4B000000  # bit pattern of 2.0**23: its low 23 mantissa bits are zero
_DEFAULT_SM_COUNT = 8  # interpreter (CPU): few programs keep the emulation fast
_ACTIVATION_BYTES = 2  # fp16 and bf16, the only activation dtypes
_MIN_DOT_K = 16  # the smallest K of a tl.dot


@dataclass(frozen=True)
class TritonConfig:
    """One launch configuration. `block_k` counts unpacked K values (a multiple of 8); the GEMV
    kernel takes one row of `a` per program (block_m = 1)."""

    kernel: Literal["gemv", "tiled"]
    block_m: int
    block_n: int
    block_k: int
    split_k: int
    num_warps: int
    num_stages: int
    group_m: int = 8  # tiled only: rows of tiles that share B tiles in L2 (launch-order swizzle)
    evict: str = ""  # gemv only: eviction policy of the weight loads ("" or "evict_first")


@triton.jit
def _tile_dequant_params(s_ptr, z_ptr, group, offs_n, mask, N, HAS_ZEROS: tl.constexpr):
    """Scale and zero point, both fp32 [R, BLOCK_N], of groups `group` ([R] ints) at columns `offs_n`."""
    scale = tl.load(s_ptr + group[:, None] * N + offs_n[None, :], mask=mask, other=0.0).to(tl.float32)
    if HAS_ZEROS:
        # zeros[g, c] packs the zeros of columns 8c..8c+7, column 8c + j at bits 4j.
        zword = tl.load(z_ptr + group[:, None] * (N // 8) + (offs_n // 8)[None, :], mask=mask, other=0)
        zero = ((zword >> ((offs_n % 8) * 4)[None, :]) & 0xF).to(tl.float32)
    else:
        zero = tl.full(scale.shape, 8.0, tl.float32)
    return scale, zero


@triton.jit
def _nibble_minus_zero(src, SHIFT: tl.constexpr, zero, two_pow23_bits):
    """(q - zero) * 2^SHIFT as an exact fp32; q is the nibble at bits SHIFT..SHIFT+3 of `src`, SHIFT <= 16.

    OR-ing the masked nibble, still in place, into the bits of 2^23 gives the fp32 2^23 + q * 2^SHIFT
    exactly (SHIFT <= 16 keeps the nibble below bit 23, the exponent's lowest bit), and the
    difference with 2^23 + zero * 2^SHIFT is exact too: one logic op and one add per weight, no
    int->float conversion. The caller undoes 2^SHIFT once per K value (on the activation) or once
    per column (on the scale), not per weight.

    `two_pow23_bits` (0x4B000000) arrives as a run-time argument: with both it and the mask as
    immediates, ptxas re-materialises one of them with an extra move per nibble.
    """
    bits = (src & (0xF << SHIFT)) | two_pow23_bits
    return bits.to(tl.float32, bitcast=True) - (8388608.0 + zero * (1 << SHIFT))


@triton.jit
def _high_nibbles(packed):
    """Nibbles 5-7 of each word moved to bits 0-11: in place, nibble 5 would touch bit 23."""
    return (packed.to(tl.uint32, bitcast=True) >> 20).to(tl.int32, bitcast=True)


@triton.jit
def _dequant_tile(packed, scale, zero, two_pow23_bits, dtype: tl.constexpr):
    """Packed [R, BLOCK_N] words -> dequantised [8R, BLOCK_N] weights of `dtype`, row 8r + i = nibble i.

    The 2^SHIFT of `_nibble_minus_zero` is folded into the scale.
    """
    high = _high_nibbles(packed)
    w0 = _nibble_minus_zero(packed, 0, zero, two_pow23_bits) * scale
    w1 = _nibble_minus_zero(packed, 4, zero, two_pow23_bits) * (scale * (1.0 / 16))
    w2 = _nibble_minus_zero(packed, 8, zero, two_pow23_bits) * (scale * (1.0 / 256))
    w3 = _nibble_minus_zero(packed, 12, zero, two_pow23_bits) * (scale * (1.0 / 4096))
    w4 = _nibble_minus_zero(packed, 16, zero, two_pow23_bits) * (scale * (1.0 / 65536))
    w5 = _nibble_minus_zero(high, 0, zero, two_pow23_bits) * scale
    w6 = _nibble_minus_zero(high, 4, zero, two_pow23_bits) * (scale * (1.0 / 16))
    w7 = _nibble_minus_zero(high, 8, zero, two_pow23_bits) * (scale * (1.0 / 256))
    # join nests as w[..., j0, j1, j2] = nibble 4*j2 + 2*j1 + j0; move (j2, j1, j0) in front of the
    # columns and merge them with the packed-row index: row r*8 + i.
    w = tl.join(tl.join(tl.join(w0, w1), tl.join(w2, w3)), tl.join(tl.join(w4, w5), tl.join(w6, w7)))
    w = tl.permute(w, (0, 4, 3, 2, 1))
    return tl.reshape(w, [8 * packed.shape[0], packed.shape[1]]).to(dtype)


@triton.jit
def _split_rows(pid_k, K, rows_per_split):
    """Packed-row range [start, end) of split `pid_k`."""
    row_start = pid_k * rows_per_split
    row_end = tl.minimum(row_start + rows_per_split, K // 8)
    return row_start, row_end


@triton.jit
def _store_tile(result, offs_m, offs_n, M, N, pid_k, bias_ptr, out_ptr, ws_ptr,
                HAS_BIAS: tl.constexpr, IS_SPLIT: tl.constexpr):
    """fp32 [BLOCK_M, BLOCK_N] result -> output (bias added, cast) or this split's workspace slice.

    Row offsets in 64 bits: M * N reaches 2^31 at prefill sizes (M = 32768 on N = 65536), where
    32-bit offsets would wrap and the stores land before the output.
    """
    mask = (offs_m < M)[:, None] & (offs_n < N)[None, :]
    rows = offs_m.to(tl.int64)[:, None]
    if IS_SPLIT:
        tl.store(ws_ptr + (pid_k * M + rows) * N + offs_n[None, :], result, mask=mask)
    else:
        if HAS_BIAS:
            result += tl.load(bias_ptr + offs_n, mask=offs_n < N, other=0.0).to(tl.float32)[None, :]
        tl.store(out_ptr + rows * N + offs_n[None, :], result.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _gemv_kernel(a_ptr, b_ptr, s_ptr, z_ptr, bias_ptr, out_ptr, ws_ptr,
                 M, N, K, rows_per_split, two_pow23_bits,
                 HAS_ZEROS: tl.constexpr, HAS_BIAS: tl.constexpr,
                 IS_SPLIT: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_KP: tl.constexpr,
                 GROUP_ROWS: tl.constexpr, NUM_STAGES: tl.constexpr, EVICT: tl.constexpr):
    """Grid (M, N blocks, splits): one row of a per program, BLOCK_KP packed rows per step.

    The [BLOCK_KP, BLOCK_N] tile of packed words is spread over all the program's warps, so a
    program covers a long K range with many loads in flight and needs split-K only where N alone
    gives too few programs. Rows of a are the fastest-varying program id, so the programs that
    read the same weight tile for different rows run at about the same time and all but the
    first hit in L2.
    """
    m = tl.program_id(0)
    pid_n = tl.program_id(1)
    pid_k = tl.program_id(2)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_n = offs_n < N
    row_start, row_end = _split_rows(pid_k, K, rows_per_split)
    a_row = a_ptr + m.to(tl.int64) * K

    # acc[r, n] sums a[k] * w[k, n] over the K values k of every packed row this thread visits at
    # tile row r; the sum over tile rows (across threads and warps) happens once, after the loop.
    acc = tl.zeros([BLOCK_KP, BLOCK_N], dtype=tl.float32)
    for r0 in tl.range(row_start, row_end, BLOCK_KP, num_stages=NUM_STAGES):
        rows = r0 + tl.arange(0, BLOCK_KP)
        mask_r = rows < row_end
        mask = mask_r[:, None] & mask_n[None, :]
        packed = tl.load(b_ptr + rows[:, None] * N + offs_n[None, :], mask=mask, other=0, eviction_policy=EVICT)
        if GROUP_ROWS % BLOCK_KP == 0:
            # Steps start at multiples of BLOCK_KP (so do splits), so a step never straddles two
            # groups: one [1, BLOCK_N] load of scales (and zeros) serves the whole step.
            scale, zero = _tile_dequant_params(s_ptr, z_ptr, tl.zeros([1], tl.int32) + r0 // GROUP_ROWS, offs_n,
                                               mask_n[None, :], N, HAS_ZEROS)
        else:
            scale, zero = _tile_dequant_params(s_ptr, z_ptr, rows // GROUP_ROWS, offs_n, mask, N, HAS_ZEROS)
        high = _high_nibbles(packed)
        part = tl.zeros([BLOCK_KP, BLOCK_N], dtype=tl.float32)
        for i in tl.static_range(8):
            a_i = tl.load(a_row + rows * 8 + i, mask=mask_r, other=0.0).to(tl.float32)
            if i < 5:
                w_i = _nibble_minus_zero(packed, 4 * i, zero, two_pow23_bits)
                part += (a_i * (1.0 / (1 << (4 * i))))[:, None] * w_i
            else:
                w_i = _nibble_minus_zero(high, 4 * i - 20, zero, two_pow23_bits)
                part += (a_i * (1.0 / (1 << (4 * i - 20))))[:, None] * w_i
        acc += part * scale
    offs_m = m + tl.arange(0, 1)
    result = tl.sum(acc, axis=0)[None, :]
    _store_tile(result, offs_m, offs_n, M, N, pid_k, bias_ptr, out_ptr, ws_ptr, HAS_BIAS, IS_SPLIT)


@triton.jit
def _gather_columns_kernel(a_ptr, perm_ptr, out_ptr, M, K, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr):
    """out[m, k] = a[m, perm[k]]; an entry outside [0, K) gives NaN, never an out-of-bounds read."""
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_k = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)
    mask_k = offs_k < K
    src = tl.load(perm_ptr + offs_k, mask=mask_k, other=0)
    inside = (src >= 0) & (src < K)
    rows = offs_m.to(tl.int64)[:, None] * K
    mask = (offs_m < M)[:, None] & mask_k[None, :]
    values = tl.load(a_ptr + rows + tl.where(inside, src, 0)[None, :], mask=mask, other=0.0)
    # Through fp32, where the interpreter's bf16 values are numbers too (module docstring); exact.
    values = tl.where(inside[None, :], values.to(tl.float32), float("nan"))
    tl.store(out_ptr + rows + offs_k[None, :], values.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _tiled_kernel(a_ptr, b_ptr, s_ptr, z_ptr, bias_ptr, out_ptr, ws_ptr,
                  M, N, K, rows_per_split, two_pow23_bits, group_size,
                  HAS_ZEROS: tl.constexpr, HAS_BIAS: tl.constexpr,
                  IS_SPLIT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                  BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr):
    """Grid (M blocks * N blocks, splits). Tensor-core tiles; B dequantised in registers."""
    BLOCK_KP: tl.constexpr = BLOCK_K // 8
    pid = tl.program_id(0)
    pid_k = tl.program_id(1)
    # Launch order walks GROUP_M tile rows down one tile column before moving right, so
    # consecutive programs reuse the same weight tiles from L2.
    blocks_m = tl.cdiv(M, BLOCK_M)
    blocks_n = tl.cdiv(N, BLOCK_N)
    tiles_per_group = GROUP_M * blocks_n
    first_m = (pid // tiles_per_group) * GROUP_M
    group_rows = tl.minimum(blocks_m - first_m, GROUP_M)
    pid_m = first_m + (pid % tiles_per_group) % group_rows
    pid_n = (pid % tiles_per_group) // group_rows

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_m = offs_m < M
    mask_n = offs_n < N
    a_rows = a_ptr + offs_m.to(tl.int64)[:, None] * K
    row_start, row_end = _split_rows(pid_k, K, rows_per_split)

    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for r0 in range(row_start, row_end, BLOCK_KP):
        rows = r0 + tl.arange(0, BLOCK_KP)
        mask_rn = (rows < row_end)[:, None] & mask_n[None, :]
        packed = tl.load(b_ptr + rows[:, None] * N + offs_n[None, :], mask=mask_rn, other=0)
        # A packed row's 8 K values share one group: G is a multiple of 8.
        scale, zero = _tile_dequant_params(s_ptr, z_ptr, (rows * 8) // group_size, offs_n, mask_rn, N, HAS_ZEROS)
        w = _dequant_tile(packed, scale, zero, two_pow23_bits, a_ptr.dtype.element_ty)
        k_idx = r0 * 8 + tl.arange(0, BLOCK_K)
        mask_k = k_idx < row_end * 8
        a = tl.load(a_rows + k_idx[None, :], mask=mask_m[:, None] & mask_k[None, :], other=0.0)
        acc = tl.dot(a, w, acc)
    _store_tile(acc, offs_m, offs_n, M, N, pid_k, bias_ptr, out_ptr, ws_ptr, HAS_BIAS, IS_SPLIT)


@triton.jit
def _splitk_reduce_kernel(ws_ptr, bias_ptr, out_ptr, M, N, split_k,
                          HAS_BIAS: tl.constexpr, BLOCK: tl.constexpr):
    """out = sum over splits 0, 1, 2, ... (this order, always) of the fp32 partials (+ bias)."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < M * N
    total = tl.load(ws_ptr + offs, mask=mask, other=0.0)
    for s in range(1, split_k):
        total += tl.load(ws_ptr + s * M * N + offs, mask=mask, other=0.0)
    if HAS_BIAS:
        total += tl.load(bias_ptr + offs % N, mask=mask, other=0.0).to(tl.float32)
    tl.store(out_ptr + offs, total.to(out_ptr.dtype.element_ty), mask=mask)


_REDUCE_BLOCK = 1024
_GATHER_BLOCK_M, _GATHER_BLOCK_K = 16, 256
# triton.jit made interpreter kernels (TRITON_INTERPRET=1 at import): read off a kernel, since the flag's home,
# triton.knobs, is new in Triton 3.4 (ROCm PyTorch 2.7 ships 3.3).
_INTERPRETED = isinstance(_splitk_reduce_kernel, InterpretedFunction)


@functools.cache
def _sm_count(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return _DEFAULT_SM_COUNT


def _split_for(blocks: int, k_rows: int, rows_per_step: int, target_programs: int, max_split: int) -> int:
    """Smallest power-of-two split that reaches `target_programs` while each split keeps >= 2 steps."""
    split = 1
    while blocks * split < target_programs and split < max_split and k_rows >= 2 * rows_per_step * (2 * split):
        split *= 2
    return split


def _tuned_config(m: int, n: int, k: int, sms: int) -> TritonConfig:
    """The tuned launch configuration for an [m, k] x [k, n] problem on `sms` SMs (or CUs).

    Tuned on an H100 (benchmarks/tune_triton.py; results in benchmarks/results_tune_H100.md):
    the GEMV kernel for M <= 2, where streaming the weights is all the work: 32 columns and 64
    packed rows (512 K values) per step over 4 warps, K split until there are about 3.5 programs
    per SM, which picked the best or near-best split on all four benchmark shapes. At M = 1 no
    software pipelining and an evict-first hint on the weights (read once) were measured faster;
    at M = 2 the rows' programs share each weight tile through L2, and 3 stages without the hint
    was the best tried. Then the tiled kernel with 16-row tiles and split-K up to M = 64 (one
    dequantisation serves all rows); big tensor-core tiles beyond.
    """
    k_rows = k // PACK_FACTOR
    if m <= 2:
        block_n, block_k = 32, 512
        split = _split_for(m * triton.cdiv(n, block_n), k_rows, block_k // PACK_FACTOR, 7 * sms // 2, 32)
        if m == 1:
            return TritonConfig("gemv", 1, block_n, block_k, split, num_warps=4, num_stages=1, evict="evict_first")
        return TritonConfig("gemv", 1, block_n, block_k, split, num_warps=4, num_stages=3)
    if m <= 64:
        block_m, block_n, block_k = 16 if m <= 16 else 32 if m <= 32 else 64, 128, 64
        blocks = triton.cdiv(m, block_m) * triton.cdiv(n, block_n)
        split = _split_for(blocks, k_rows, block_k // PACK_FACTOR, 6 * sms, 8)
        return TritonConfig("tiled", block_m, block_n, block_k, split, num_warps=4, num_stages=3)
    if m >= 1024:
        return TritonConfig("tiled", 256, 128, 64, 1, num_warps=8, num_stages=3)
    if triton.cdiv(m, 128) * triton.cdiv(n, 128) >= sms:
        return TritonConfig("tiled", 128, 128, 64, 1, num_warps=8, num_stages=3)
    return TritonConfig("tiled", 128, 64, 64, 1, num_warps=4, num_stages=4)


# The fields of a tuned config that differ on AMD GPUs, by its (kernel, block_m, block_n, num_stages). As tuned (on an
# H100), compiled for gfx1100 with Triton 3.3 to 3.5, every config spills VGPRs (worst case over fp16/bf16, zero points
# or not, split or not: 4 to 1028 per thread), and all but three still do with 3.9 (53 to 824). These forms compile for
# gfx1100 without spills and within 64 KiB of LDS on Triton 3.3.1, 3.4.0, 3.5.1, 3.6.0 and 3.9 in all those variants: more
# warps give each thread a smaller share of the accumulator and of the dequantised weights, a smaller BLOCK_K a smaller
# weight tile; output tiles, split-K and the M branches stay. Chosen from compiler output only, never timed: no AMD GPU
# was available to this project.
_AMD_CHANGES: dict[tuple[str, int, int, int], dict[str, int]] = {
    ("gemv", 1, 32, 1): dict(num_warps=8),  # M = 1
    ("gemv", 1, 32, 3): dict(num_warps=8, num_stages=2),  # M = 2
    ("tiled", 16, 128, 3): dict(num_warps=8),
    ("tiled", 32, 128, 3): dict(block_k=32),
    ("tiled", 64, 128, 3): dict(block_k=32, num_warps=8),
    ("tiled", 128, 128, 3): dict(num_warps=16),
    ("tiled", 128, 64, 4): dict(num_warps=16),
    # BLOCK_K 32 there spilled 1 VGPR with Triton 3.6.0 (fp16 and bf16, unsplit).
    ("tiled", 256, 128, 3): dict(block_k=16, num_warps=16, num_stages=2),
}


def amd_config(tuned: TritonConfig) -> TritonConfig:
    """`tuned`, a config of the tuned table, in the form AMD GPUs run (`_AMD_CHANGES`)."""
    return replace(tuned, **_AMD_CHANGES[(tuned.kernel, tuned.block_m, tuned.block_n, tuned.num_stages)])


def _is_amd(device: torch.device) -> bool:
    """Whether `device` is an AMD GPU: a ROCm build of PyTorch names its GPUs "cuda" too."""
    return device.type == "cuda" and torch.version.hip is not None


@functools.cache
def _shared_memory_limit(device: torch.device) -> int | None:
    """Bytes of shared memory (LDS) one program may use on `device`; None on the CPU (interpreter)."""
    if device.type != "cuda":
        return None
    index = torch.cuda.current_device() if device.index is None else device.index
    # The number Triton's launch compares metadata.shared with (its OutOfResources check).
    return triton.runtime.driver.active.utils.get_device_properties(index)["max_shared_mem"]


def shared_memory_bytes(config: TritonConfig) -> int:
    """Shared memory (LDS) `config` needs, as Triton 3.9's AMD backend lays it out.

    Tiled: the pipeline holds num_stages - 1 `a` tiles (one at 1 stage) and the dequantised weight
    tile passes through once to reach tl.dot's operand layout; GEMV: the warps' fp32 column sums
    meet there. Equal to metadata.shared for gfx1100 on every table config (above it at 1 stage).
    The NVIDIA backend also stages scales, zeros and the epilogue: up to 64 KiB on the table's
    configs for sm_75 to sm_90, within those GPUs' limits.
    """
    if config.kernel == "gemv":
        return config.num_warps * config.block_n * 4
    a_tile = config.block_m * config.block_k * _ACTIVATION_BYTES
    weight_tile = config.block_k * config.block_n * _ACTIVATION_BYTES
    return max(config.num_stages - 1, 1) * a_tile + weight_tile


def fit_shared_memory(config: TritonConfig, limit: int | None) -> TritonConfig:
    """`config` if it fits `limit` bytes (None: no limit), else a tiled config stepped down until it
    does: fewer stages first (same tile, less prefetch), then half the BLOCK_K, down to 1 stage of 16."""
    if limit is None or config.kernel == "gemv":
        return config
    while shared_memory_bytes(config) > limit and config.num_stages > 1:
        config = replace(config, num_stages=config.num_stages - 1)
    while shared_memory_bytes(config) > limit and config.block_k > _MIN_DOT_K:
        config = replace(config, block_k=config.block_k // 2)
    return config


def choose_config(m: int, n: int, k: int, device: torch.device) -> TritonConfig:
    """The launch configuration for an [m, k] x [k, n] problem: the tuned one (its AMD form on an AMD GPU), stepped
    down where it needs more shared memory than `device` has (from sm_80 on, NVIDIA GPUs run the table)."""
    tuned = _tuned_config(m, n, k, _sm_count(device))
    return fit_shared_memory(amd_config(tuned) if _is_amd(device) else tuned, _shared_memory_limit(device))


def gemm_with_config(
    a: torch.Tensor,
    b_q: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor | None,
    perm: torch.Tensor | None,
    bias: torch.Tensor | None,
    config: TritonConfig,
) -> torch.Tensor:
    """Run one explicit configuration (tests and tuning); `gemm_triton` picks it by shape."""
    shape = check_gemm_args(a, b_q, scales, zeros, perm, bias)
    return _launch(a, b_q, scales, zeros, perm, bias, shape, config)


def _launch(
    a: torch.Tensor,
    b_q: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor | None,
    perm: torch.Tensor | None,
    bias: torch.Tensor | None,
    shape: GemmShape,
    config: TritonConfig,
) -> torch.Tensor:
    if a.device.type == "cpu" and not _INTERPRETED:
        raise ValueError("a: the Triton kernel needs a GPU tensor (or TRITON_INTERPRET=1 set before import)")
    m, k, n = shape.m, shape.k, shape.n
    out = torch.empty((m, n), dtype=a.dtype, device=a.device)
    if m == 0:
        return out
    k_rows = k // PACK_FACTOR
    step_rows = config.block_k // PACK_FACTOR
    rows_per_split = triton.cdiv(triton.cdiv(k_rows, config.split_k), step_rows) * step_rows
    splits = triton.cdiv(k_rows, rows_per_split)
    is_split = splits > 1
    ws = torch.empty((splits, m, n), dtype=torch.float32, device=a.device) if is_split else out
    if perm is not None:
        gathered = torch.empty_like(a)
        _gather_columns_kernel[(triton.cdiv(m, _GATHER_BLOCK_M), triton.cdiv(k, _GATHER_BLOCK_K))](
            a, perm, gathered, m, k, BLOCK_M=_GATHER_BLOCK_M, BLOCK_K=_GATHER_BLOCK_K)
        a = gathered
    # Unused pointer arguments get a valid tensor; their constexpr flag keeps them unread.
    args = (a, b_q, scales, b_q if zeros is None else zeros, scales if bias is None else bias, out, ws, m, n, k,
            rows_per_split, _FP32_2POW23_BITS)
    flags = dict(HAS_ZEROS=zeros is not None, HAS_BIAS=bias is not None, IS_SPLIT=is_split,
                 BLOCK_N=config.block_n, num_warps=config.num_warps)
    if config.kernel == "gemv":
        grid: tuple[int, ...] = (m, triton.cdiv(n, config.block_n), splits)
        # The group size is a compile-time constant here (one kernel per G, per K when channelwise):
        # the per-row group index becomes a shift, and a step that lies in one group is known.
        _gemv_kernel[grid](*args, BLOCK_KP=step_rows, GROUP_ROWS=shape.group_size // PACK_FACTOR,
                           NUM_STAGES=config.num_stages, EVICT=config.evict, **flags)
    else:
        grid = (triton.cdiv(m, config.block_m) * triton.cdiv(n, config.block_n), splits)
        _tiled_kernel[grid](*args, shape.group_size, BLOCK_M=config.block_m, BLOCK_K=config.block_k,
                            GROUP_M=config.group_m, num_stages=config.num_stages, **flags)
    if is_split:
        _splitk_reduce_kernel[(triton.cdiv(m * n, _REDUCE_BLOCK),)](
            ws, scales if bias is None else bias, out, m, n, splits,
            HAS_BIAS=bias is not None, BLOCK=_REDUCE_BLOCK)
    return out


@torch.library.custom_op("w4a16_rdna3::gemm_triton", mutates_args=())
def gemm_triton(
    a: torch.Tensor,
    b_q: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor | None = None,
    perm: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """out[M, N] = a[:, perm] @ dequant(b_q, scales, zeros) (+ bias), fp32 accumulation, a's dtype.

    `a` is 2-D. The configuration is chosen here from M, inside the op, so a graph compiled at
    one M still picks the right kernel at another.
    """
    shape = check_gemm_args(a, b_q, scales, zeros, perm, bias)
    config = choose_config(shape.m, shape.n, shape.k, a.device)
    return _launch(a, b_q, scales, zeros, perm, bias, shape, config)


# The same fake impl as the native ops: argument checks, then an [M, N] output of a's dtype.
gemm_triton.register_fake(gemm_fake)
