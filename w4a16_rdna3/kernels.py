"""MPLinearKernel-style W4A16 linear kernels and the choice between them.

The shape of vLLM's mixed-precision kernel family (a small class per kernel; `can_implement`
says yes or no with a reason; checkpoint weights are converted once at load; `apply_weights`
runs the GEMM). When vLLM is importable, the classes here subclass vLLM's own `MPLinearKernel`
and take vLLM's `MPLinearLayerConfig`, so vLLM's `choose_mp_linear_kernel` can pick them (the
plugin in `vllm_plugin.py` puts the RDNA3 one first on ROCm). Without vLLM they stand alone on
the same interface, for the command line and the tests.
"""

import importlib.util
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch

from w4a16_rdna3 import _ops, platform
from w4a16_rdna3.checks import MAX_B_Q_WORDS
from w4a16_rdna3.formats import PACK_FACTOR, KernelWeights, from_compressed_tensors, from_gptq
from w4a16_rdna3.parameter_store import ParameterStore, parameter_store
from w4a16_rdna3.vllm_compat import VllmNotFound, find_mixed_precision

TARGET_ARCH = "gfx1100"
ACT_TYPES = (torch.float16, torch.bfloat16)
# vLLM 0.33 and later have a kernel class of their own named RDNA3W4A16LinearKernel, and log "Using
# <class name>" for a layer: each class here says once per process, under vLLM's logger, that it
# is this package's one that took a layer.
logger = logging.getLogger("vllm.w4a16_rdna3")
_ANNOUNCED: set[str] = set()


@dataclass(frozen=True)
class WeightType:
    """Stand-in for vLLM's ScalarType where vLLM is absent.

    Weight types are recognised by the name vLLM prints for them (`str(scalar_types.uint4b8)` is
    "uint4b8"), so vLLM's ScalarType and this class are interchangeable in a config.
    """

    name: str
    size_bits: int
    bias: int

    def __str__(self) -> str:
        return self.name


# 4-bit unsigned with the symmetric zero 8 folded into the type (GPTQ sym=True), and plain
# unsigned 4-bit whose zero points come from the checkpoint (sym=False).
UINT4B8 = WeightType("uint4b8", 4, 8)
UINT4 = WeightType("uint4", 4, 0)
_SUPPORTED_WEIGHT_TYPES = (str(UINT4B8), str(UINT4))


@dataclass
class W4A16LayerConfig:
    """Field for field vLLM's MPLinearLayerConfig (the union over the vLLM versions supported).

    Shapes are [in, out] = [K, N]; `partition_weight_shape` is this rank's share under tensor
    parallelism. group_size -1 means channelwise. vLLM 0.33.0 dropped `has_g_idx` (act-order is
    gone there), hence its default.
    """

    full_weight_shape: tuple[int, int]
    partition_weight_shape: tuple[int, int]
    weight_type: Any  # WeightType, or vLLM's ScalarType
    act_type: torch.dtype
    group_size: int
    zero_points: bool
    has_g_idx: bool = False
    out_type: torch.dtype | None = None


def gptq_layer_config(
    k: int,
    n: int,
    group_size: int = 128,
    *,
    act_dtype: torch.dtype = torch.float16,
    symmetric: bool = True,
    act_order: bool = False,
    k_partition: int | None = None,
) -> W4A16LayerConfig:
    """The config of a GPTQ-style layer y = x @ W, W [k, n]; k_partition: this rank's K under TP."""
    return W4A16LayerConfig(
        full_weight_shape=(k, n),
        partition_weight_shape=(k if k_partition is None else k_partition, n),
        weight_type=UINT4B8 if symmetric else UINT4,
        act_type=act_dtype,
        group_size=group_size,
        zero_points=not symmetric,
        has_g_idx=act_order,
    )


class StandaloneMPLinearKernel(ABC):
    """vLLM's MPLinearKernel interface, for when vLLM is not installed."""

    @classmethod
    @abstractmethod
    def get_min_capability(cls) -> int: ...

    @classmethod
    @abstractmethod
    def can_implement(cls, c: Any) -> tuple[bool, str | None]: ...

    @abstractmethod
    def process_weights_after_loading(self, layer: torch.nn.Module) -> None: ...

    @abstractmethod
    def apply_weights(
        self, layer: torch.nn.Module, x: torch.Tensor, bias: torch.Tensor | None = None
    ) -> torch.Tensor: ...


def _vllm_kernel_base() -> tuple[type, ParameterStore, str]:
    """vLLM's MPLinearKernel and parameter helpers if vLLM is usable here, else stand-alone ones; and why."""
    try:
        found = find_mixed_precision()
    except VllmNotFound as e:
        return StandaloneMPLinearKernel, parameter_store(None), str(e)
    except Exception as e:  # noqa: BLE001 - an unknown or broken vLLM must not break the package
        return StandaloneMPLinearKernel, parameter_store(None), f"vLLM is installed but unusable here: {e}"
    reason = f"subclassing {found.base_module.__name__}.MPLinearKernel of vLLM {found.version}"
    return found.kernel_base, parameter_store(found), reason


MPLinearKernelBase, PARAMETER_STORE, KERNEL_BASE_REASON = _vllm_kernel_base()


def _group_size(c: Any) -> int:
    return c.partition_weight_shape[0] if c.group_size == -1 else c.group_size


def _layer_refusal(c: Any) -> str | None:
    """What neither kernel can do with this layer, in plain words, or None."""
    k_part, n_part = c.partition_weight_shape
    if c.act_type not in ACT_TYPES:
        return f"activation dtype is {c.act_type}; only torch.float16 and torch.bfloat16 are supported"
    out_type = getattr(c, "out_type", None)
    if out_type is not None and out_type != c.act_type:
        return f"output dtype {out_type} differs from the activation dtype {c.act_type} (the output is in the latter)"
    if str(c.weight_type) not in _SUPPORTED_WEIGHT_TYPES:
        return (
            f"weight type is {c.weight_type}; only 4-bit uint4b8 (symmetric) and uint4 (with zero points) are supported"
        )
    if str(c.weight_type) == str(UINT4) and not c.zero_points:
        return (
            "weight type uint4 without zero points (a zero of 0) is not a GPTQ layout; expected uint4b8 or zero points"
        )
    if k_part % PACK_FACTOR:
        return f"K of this partition ({k_part}) is not a multiple of {PACK_FACTOR} (8 4-bit values per int32)"
    group = _group_size(c)
    if group <= 0 or group % PACK_FACTOR or k_part % group:
        return (
            f"group size {c.group_size} does not divide K of this partition ({k_part}) "
            f"into groups of a multiple of {PACK_FACTOR} rows"
        )
    if n_part % PACK_FACTOR:
        return (
            f"N of this partition ({n_part}) is not a multiple of {PACK_FACTOR} (zero points pack 8 columns per int32)"
        )
    if (k_part // PACK_FACTOR) * n_part >= MAX_B_Q_WORDS:
        return (
            f"the partition's {k_part // PACK_FACTOR} x {n_part} int32 words of 4-bit weights reach 2^31 "
            "(8 GiB), past the kernels' 32-bit row offsets"
        )
    if getattr(c, "has_g_idx", False) and k_part != c.full_weight_shape[0]:
        return (
            f"act-order (g_idx) with K split across tensor-parallel ranks ({k_part} of {c.full_weight_shape[0]}) "
            "is not supported: a rank's rows then do not form whole groups"
        )
    return None


CheckpointLayout = Literal["gptq", "compressed_tensors"]


def _zero_point_layout(zeros: torch.Tensor, weight_layout: CheckpointLayout) -> CheckpointLayout:
    """Where N lies in a zero-point tensor: dim 0 ([N/8, K/G], compressed-tensors) or dim 1 ([K/G, N/8], GPTQ).

    vLLM's parameters say (output_dim); a plain tensor is laid out as its checkpoint's weight is.
    """
    output_dim = getattr(zeros, "output_dim", None)
    if output_dim in (0, 1):
        return "compressed_tensors" if output_dim == 0 else "gptq"
    return weight_layout


def _optional_param(layer: torch.nn.Module, name: str | None) -> torch.Tensor | None:
    return None if name is None else getattr(layer, name, None)


class W4A16LinearKernel(MPLinearKernelBase):  # type: ignore[misc, valid-type]
    """Weight conversion and GEMM shared by both kernels; subclasses decide what they accept."""

    # Backend of `_ops.gemm` used when the weights are on a GPU; on the CPU the reference runs.
    gpu_backend: ClassVar[str]

    def __init__(
        self,
        c: Any,
        w_q_param_name: str,
        w_s_param_name: str,
        w_zp_param_name: str | None = None,
        w_gidx_param_name: str | None = None,
        *,
        gptq_checkpoint_format: Literal["gptq", "gptq_v2"] = "gptq",
    ) -> None:
        # Not vLLM's __init__: its signature differs between versions (0.33.0 has no g_idx name).
        # The attributes it sets are set here with the same names.
        ok, reason = self.can_implement(c)
        if not ok:
            raise ValueError(f"{type(self).__name__} cannot implement this layer: {reason}")
        if c.zero_points and w_zp_param_name is None:
            raise ValueError(
                "w_zp_param_name: expected the zero-point parameter's name for a layer with zero points, got None"
            )
        if getattr(c, "has_g_idx", False) and w_gidx_param_name is None:
            raise ValueError("w_gidx_param_name: expected the g_idx parameter's name for an act-order layer, got None")
        self.config = c
        self.w_q_name = w_q_param_name
        self.w_s_name = w_s_param_name
        self.w_zp_name = w_zp_param_name
        self.w_gidx_name = w_gidx_param_name
        # vLLM says nothing about GPTQ's zero-point storage; HF/AutoGPTQ checkpoints are "gptq" (v1).
        # It only matters with zero points: symmetric layers take their zero from the weight type.
        self.gptq_checkpoint_format = gptq_checkpoint_format
        self.backend = self.gpu_backend
        # The parameters apply_weights reads besides w_q and w_s: set by process_weights_after_loading,
        # which keeps the w_zp / w_gidx names above for reading the checkpoint on a reload.
        self.zeros_name: str | None = None
        self.perm_name: str | None = None
        self.processed = False  # apply_weights refuses checkpoint-layout parameters

    @classmethod
    def get_min_capability(cls) -> int:
        # vLLM compares this with the device's compute capability (gfx1100 reports 110); the
        # kernels gate on the real conditions in can_implement instead.
        return 0

    def _checkpoint_layout(self, w_q: torch.Tensor) -> CheckpointLayout:
        """GPTQ packs K into dim 0 (qweight [K/8, N]); compressed-tensors into dim 1 ([N, K/8]).

        vLLM's parameters say which dim is the input dim; a plain tensor is known by its name.
        """
        input_dim = getattr(w_q, "input_dim", None)
        if input_dim in (0, 1):
            return "gptq" if input_dim == 0 else "compressed_tensors"
        return "compressed_tensors" if self.w_q_name == "weight_packed" else "gptq"

    def _to_kernel_weights(self, layer: torch.nn.Module) -> KernelWeights:
        c = self.config
        k, n = c.partition_weight_shape
        w_q = getattr(layer, self.w_q_name)
        scales = getattr(layer, self.w_s_name).data.to(c.act_type)
        zeros = _optional_param(layer, self.w_zp_name) if c.zero_points else None
        g_idx = _optional_param(layer, self.w_gidx_name) if getattr(c, "has_g_idx", False) else None
        if c.zero_points and zeros is None:
            raise ValueError(f"layer.{self.w_zp_name}: expected the zero points of an asymmetric layer, found none")
        g_idx = None if g_idx is None else g_idx.data

        layout = self._checkpoint_layout(w_q)
        expected = [k // PACK_FACTOR, n] if layout == "gptq" else [n, k // PACK_FACTOR]
        if list(w_q.shape) != expected:
            raise ValueError(
                f"layer.{self.w_q_name}: expected a {layout} packed weight of shape {expected} for "
                f"[K, N] = [{k}, {n}], got {list(w_q.shape)}"
            )
        zeros_layout = layout if zeros is None else _zero_point_layout(zeros, layout)
        zeros = None if zeros is None else zeros.data
        if layout == "gptq":
            zeros_format = self.gptq_checkpoint_format
            if zeros is not None and zeros_layout == "compressed_tensors":
                # vLLM's Quark (and AWQ) methods convert their weights to GPTQ's layout but their zero
                # points to compressed-tensors' [N/8, K/G], holding the true zero: transposed, that is
                # GPTQ v2's qzeros.
                zeros, zeros_format = zeros.t(), "gptq_v2"
            return from_gptq(
                w_q.data,
                zeros,
                scales,
                g_idx,
                symmetric=not c.zero_points,
                checkpoint_format=zeros_format,
            )
        if zeros_layout == "gptq":
            raise ValueError(
                f"layer.{self.w_zp_name}: zero points in GPTQ's layout [K/G, N/8] beside a compressed-tensors "
                "weight: no checkpoint format stores that, and which zero convention they use is unknown"
            )
        return from_compressed_tensors(w_q.data, scales, zeros, g_idx)

    def process_weights_after_loading(self, layer: torch.nn.Module) -> None:
        """Checkpoint parameters -> kernel layout, under the quant method's names.

        layer.<w_q> becomes b_q, layer.<w_s> the scales (in the activation dtype), layer.<w_zp>
        the zeros and layer.<w_gidx> the act-order perm. Under vLLM the loaded parameter objects
        are kept and refilled (`ParameterStore`), so vLLM can load new weights into them and
        process them again, and CUDA graphs keep their addresses. A parameter the kernel does
        not read (a symmetric layer's zero points, an in-order g_idx) is retired.
        """
        weights = self._to_kernel_weights(layer)
        PARAMETER_STORE.replace(layer, self.w_q_name, weights.b_q.contiguous())
        PARAMETER_STORE.replace(layer, self.w_s_name, weights.scales.contiguous())
        self.zeros_name = self._store_if_read(layer, self.w_zp_name, weights.zeros)
        self.perm_name = self._store_if_read(layer, self.w_gidx_name, weights.perm)
        self.backend = self.gpu_backend if weights.b_q.is_cuda else "reference"
        self.processed = True
        name = type(self).__name__
        if name not in _ANNOUNCED:
            _ANNOUNCED.add(name)
            logger.info("w4a16_rdna3's %s (module %s, %s path) took its first layer, [K, N] = %s", name,
                        __name__, self.backend, list(self.config.partition_weight_shape))

    @staticmethod
    def _store_if_read(layer: torch.nn.Module, name: str | None, value: torch.Tensor | None) -> str | None:
        """Store `value` under `name` and return the name, or retire the parameter when value is None."""
        if name is None or getattr(layer, name, None) is None:
            return None
        if value is None:
            PARAMETER_STORE.retire(layer, name)
            return None
        PARAMETER_STORE.replace(layer, name, value.contiguous())
        return name

    def apply_weights(self, layer: torch.nn.Module, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """y[..., N] = x[..., K] @ W (+ bias). The M-dependent choice of kernel is made inside the op."""
        if not self.processed:
            # A GPTQ qweight has b_q's shape, so the op could not tell, and zero points would be missed.
            raise RuntimeError(
                f"{type(self).__name__}.apply_weights: the layer still holds checkpoint tensors; "
                "call process_weights_after_loading(layer) first"
            )
        return _ops.gemm(
            x,
            getattr(layer, self.w_q_name),
            getattr(layer, self.w_s_name),
            _optional_param(layer, self.zeros_name),
            _optional_param(layer, self.perm_name),
            bias,
            backend=self.backend,
        )


def _torch_refusal() -> str | None:
    if torch.version.hip is None:
        cuda = f", a CUDA {torch.version.cuda} build" if torch.version.cuda else ", a CPU-only build"
        return f"PyTorch {torch.__version__} is not a ROCm build (torch.version.hip is None{cuda})"
    return None


def _arch_refusal() -> str | None:
    arch = platform.gcn_arch()
    if arch is None:
        return f"no GPU arch detected: {platform.gcn_arch_reason()}"
    if arch != TARGET_ARCH:
        return f"GPU arch is {arch}, not {TARGET_ARCH} ({platform.gcn_arch_reason()})"
    return None


def _extension_refusal() -> str | None:
    info = _ops.native_build_info()
    if info is None:
        return f"the native extension is not available: {_ops.native_unavailable_reason()}"
    arches = list(info.get("arches", []))
    if info.get("emulation") or TARGET_ARCH not in arches:
        return (
            f"the native extension was built for {info.get('backend', 'an unknown backend')} {arches}"
            f"{' (RDNA3 emulation)' if info.get('emulation') else ''}, not for {TARGET_ARCH}"
        )
    return None


def native_kernel_refusal() -> str | None:
    """Why RDNA3W4A16LinearKernel refuses every layer on this machine, or None where it can run."""
    for check in (_torch_refusal, _arch_refusal, _extension_refusal):
        reason = check()
        if reason is not None:
            return reason
    return None


class RDNA3W4A16LinearKernel(W4A16LinearKernel):
    """The native gfx1100 kernels (dot2 decode, WMMA prefill) of the `w4a16_rdna3._C` extension."""

    gpu_backend = "native"

    @classmethod
    def can_implement(cls, c: Any) -> tuple[bool, str | None]:
        reason = native_kernel_refusal() or _layer_refusal(c)
        return reason is None, reason


class TritonW4A16LinearKernel(W4A16LinearKernel):
    """The Triton fallback for every other GPU; on the CPU its apply runs the fp32 reference."""

    gpu_backend = "triton"

    @classmethod
    def can_implement(cls, c: Any) -> tuple[bool, str | None]:
        if importlib.util.find_spec("triton") is None:
            return False, "Triton is not installed (GPU builds of torch bring it; `pip install triton` elsewhere)"
        reason = _layer_refusal(c)
        return reason is None, reason


KERNELS: tuple[type[W4A16LinearKernel], ...] = (RDNA3W4A16LinearKernel, TritonW4A16LinearKernel)


@dataclass(frozen=True)
class Selection:
    """The kernel chosen for a layer (None if none can run it) and why each other one refused.

    `refusals` maps kernel class name -> reason, in the order the kernels were tried; every
    kernel is asked, so it also holds the refusals of kernels after the chosen one.
    """

    kernel: type[W4A16LinearKernel] | None
    refusals: dict[str, str]


def choose_kernel(c: Any, kernels: tuple[type[W4A16LinearKernel], ...] = KERNELS) -> Selection:
    """The first kernel in `kernels` whose can_implement(c) accepts the layer, with all refusals."""
    chosen: type[W4A16LinearKernel] | None = None
    refusals: dict[str, str] = {}
    for kernel in kernels:
        ok, reason = kernel.can_implement(c)
        if ok:
            chosen = chosen or kernel
        else:
            refusals[kernel.__name__] = reason or "refused without a reason"
    return Selection(chosen, refusals)
