"""vLLM general plugin (entry point group `vllm.general_plugins`, name `w4a16_rdna3`).

vLLM calls `register()` in every process it starts (engine, workers), before models are built.
On ROCm it puts RDNA3W4A16LinearKernel first among vLLM's candidate mixed-precision kernels, so
`choose_mp_linear_kernel` asks it first for every GPTQ / compressed-tensors W4A16 layer; its
`can_implement` accepts only gfx1100 (with the extension built) and otherwise lets vLLM's own
candidates take the layer. Elsewhere nothing changes. It never raises: vLLM does not catch
plugin errors, and a failed plugin must not stop a server that runs fine without it.
"""

import importlib
import importlib.metadata
import logging
from typing import Any

from w4a16_rdna3.vllm_compat import VllmMixedPrecision, VllmNotFound, find_mixed_precision, vllm_version

# A child of vLLM's "vllm" logger, so the line appears in vLLM's log with vLLM's format and level.
logger = logging.getLogger("vllm.w4a16_rdna3")

PREFIX = "w4a16_rdna3 vLLM plugin:"
# vLLM 0.34 (torch >= 2.10) reuses a compiled model graph across restarts, keyed by its config and by
# every getter in vllm.envs.environment_variables, with the graph's guards off: nothing in that key
# says which kernel a layer took. A graph compiled before this plugin was installed would call vLLM's
# own kernel on weights converted to our layout (and the other way round). This entry keys it on ours.
COMPILE_CACHE_KEY = "W4A16_RDNA3_KERNEL"


def _rocm_candidates(found: VllmMixedPrecision, platform: Any) -> tuple[list, str]:
    """The list choose_mp_linear_kernel walks on this platform, and its name for the log."""
    possible = found.selection_module._POSSIBLE_KERNELS
    where = f"{found.selection_module.__name__}._POSSIBLE_KERNELS"
    if isinstance(possible, dict):
        # Newer vLLM: one list per PlatformEnum, looked up with current_platform._enum.
        key = platform._enum
        return possible.setdefault(key, []), f"{where}[{key}]"
    # Older vLLM: one list for every platform.
    return possible, where


def native_kernel_state() -> str:
    """This package's version and whether its native kernel can take layers here: what the compiled
    graphs vLLM caches depend on (COMPILE_CACHE_KEY)."""
    from w4a16_rdna3.kernels import native_kernel_refusal

    try:
        version = importlib.metadata.version("w4a16_rdna3")
    except importlib.metadata.PackageNotFoundError:
        version = "not installed"
    return f"w4a16_rdna3 {version}, native kernel {'off' if native_kernel_refusal() else 'on'}"


def _key_compiled_graphs() -> str:
    """Put COMPILE_CACHE_KEY in vLLM's table of hashed environment getters; say what was done."""
    try:
        table = getattr(importlib.import_module("vllm.envs"), "environment_variables", None)
    except ImportError:
        table = None
    if not isinstance(table, dict):
        return "this vLLM has no environment_variables table to key its compiled graphs by"
    table[COMPILE_CACHE_KEY] = native_kernel_state
    return f"its compiled graphs are keyed by {COMPILE_CACHE_KEY} ({native_kernel_state()})"


def _register() -> tuple[int, str]:
    """Do the work; return (logging level, the one line to log)."""
    try:
        version = vllm_version()
    except VllmNotFound as e:
        return logging.INFO, f"{PREFIX} {e}; nothing to register"

    # The platform first: elsewhere vLLM's kernel modules are not even imported from here.
    platform = importlib.import_module("vllm.platforms").current_platform
    if not platform.is_rocm():
        name = type(platform).__name__
        return logging.INFO, f"{PREFIX} platform is {name}, not ROCm: vLLM {version}'s kernel selection left unchanged"

    found = find_mixed_precision()

    from w4a16_rdna3.kernels import KERNEL_BASE_REASON, RDNA3W4A16LinearKernel

    if not issubclass(RDNA3W4A16LinearKernel, found.kernel_base):
        return logging.WARNING, (
            f"{PREFIX} not registered: RDNA3W4A16LinearKernel is not a vLLM {found.version} MPLinearKernel "
            f"({KERNEL_BASE_REASON})"
        )
    candidates, where = _rocm_candidates(found, platform)
    keyed = _key_compiled_graphs()
    if candidates and candidates[0] is RDNA3W4A16LinearKernel:
        return logging.INFO, f"{PREFIX} RDNA3W4A16LinearKernel already first in {where} (vLLM {found.version}); {keyed}"
    candidates[:] = [RDNA3W4A16LinearKernel] + [k for k in candidates if k is not RDNA3W4A16LinearKernel]
    return logging.INFO, (
        f"{PREFIX} put w4a16_rdna3's RDNA3W4A16LinearKernel first in {where} (vLLM {found.version}, ROCm): "
        "it takes 4-bit GPTQ / compressed-tensors layers on gfx1100 and refuses them elsewhere, leaving them "
        f"to vLLM's own kernels (`w4a16-rdna3 info` says why it refuses); {keyed}"
    )


def register() -> str:
    """Register the RDNA3 kernel with vLLM (idempotent); log and return one line saying what happened."""
    try:
        level, message = _register()
    except Exception as e:  # noqa: BLE001 - see the module docstring: never raise into vLLM
        level, message = logging.WARNING, f"{PREFIX} not registered: {type(e).__name__}: {e}"
    logger.log(level, message)
    return message
