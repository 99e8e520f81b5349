"""Where vLLM keeps its mixed-precision (MPLinearKernel) machinery, across vLLM versions.

vLLM moved the package between releases:

* newer releases (seen in 0.33.0 and 0.34.0): the base class in
  `vllm.model_executor.kernels.linear.mixed_precision.MPLinearKernel`, the per-platform candidate
  lists (`_POSSIBLE_KERNELS: dict[PlatformEnum, list]`) and `choose_mp_linear_kernel` in
  `vllm.model_executor.kernels.linear`;
* older releases: everything under `vllm.model_executor.layers.quantization.kernels.mixed_precision`,
  the candidates a single list `_POSSIBLE_KERNELS` shared by all platforms (each kernel's
  `can_implement` refuses the platforms it does not serve).

Nothing here imports vLLM at module import time: the package must import without vLLM.
"""

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

import torch

# (package holding MPLinearKernel.py, packages that may hold _POSSIBLE_KERNELS), newest first.
_LAYOUTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "vllm.model_executor.kernels.linear.mixed_precision",
        ("vllm.model_executor.kernels.linear", "vllm.model_executor.kernels.linear.mixed_precision"),
    ),
    (
        "vllm.model_executor.layers.quantization.kernels.mixed_precision",
        ("vllm.model_executor.layers.quantization.kernels.mixed_precision",),
    ),
)


class VllmNotFound(ImportError):
    """vLLM is not importable in this Python environment."""


class VllmLayoutUnknown(RuntimeError):
    """vLLM is importable, but not in a layout this package knows."""


@dataclass(frozen=True)
class VllmMixedPrecision:
    """The pieces of an installed vLLM that this package plugs into."""

    version: str
    base_module: ModuleType  # defines MPLinearKernel and MPLinearLayerConfig
    selection_module: ModuleType  # defines _POSSIBLE_KERNELS and choose_mp_linear_kernel

    @property
    def kernel_base(self) -> type:
        return self.base_module.MPLinearKernel

    @property
    def layer_config(self) -> type:
        return self.base_module.MPLinearLayerConfig

    @property
    def replace_parameter(self) -> Callable[[torch.nn.Module, str, torch.Tensor], None] | None:
        """vLLM's helper for storing a kernel tensor under a loaded parameter's name, as its own
        MPLinearKernel module imports it; None if that module has none.

        From vLLM 0.33.0 (at least) it keeps the loaded parameter object (its loader and checkpoint
        record, which vLLM's weight reload needs) and refills it, in place where the layout allows,
        so captured graphs keep their addresses. Older releases (0.11.0) re-register a new parameter.
        """
        return getattr(self.base_module, "replace_parameter", None)

    @property
    def retire_parameter(self) -> Callable[[torch.nn.Module, str], None] | None:
        """vLLM 0.34.0's mark on a loaded parameter no kernel reads (kept, so it can be loaded again); None before."""
        return getattr(self.base_module, "retire_parameter", None)

    @property
    def set_kernel_parameter(self) -> Callable[[torch.nn.Module, str, torch.Tensor], None] | None:
        """vLLM 0.34.0's replace_parameter for a tensor kernels read: it also lifts an earlier retirement
        (a weight update can make a retired parameter read again); None before."""
        utils = _import("vllm.model_executor.utils")
        return None if utils is None else getattr(utils, "set_kernel_parameter", None)


def _import(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        # Only "this module does not exist" means "other layout"; a module that exists but fails
        # to import is a broken vLLM install, and hiding that would mislead the user.
        if e.name is not None and name.startswith(e.name):
            return None
        raise


def vllm_version() -> str:
    """vLLM's version string; raises VllmNotFound when vLLM is not importable."""
    try:
        vllm = importlib.import_module("vllm")
    except ImportError as e:
        raise VllmNotFound(f"vLLM is not importable: {e}") from e
    if getattr(vllm, "__file__", None) is None:
        # A bare directory named vllm on sys.path (a source checkout's parent, this project's
        # tests/vllm) imports as a namespace package: that is not an installed vLLM.
        raise VllmNotFound(f"vLLM is not importable: 'vllm' is only a directory here ({list(vllm.__path__)})")
    return str(getattr(vllm, "__version__", "unknown"))


def find_mixed_precision() -> VllmMixedPrecision:
    """Locate MPLinearKernel and the kernel candidate lists in the installed vLLM.

    Raises VllmNotFound without vLLM, and VllmLayoutUnknown (naming the vLLM version and the
    places searched) when vLLM is there but keeps them somewhere this package does not know.
    """
    version = vllm_version()
    for base_name, selection_names in _LAYOUTS:
        base_pkg = _import(base_name)
        if base_pkg is None:
            continue
        base = _import(f"{base_name}.MPLinearKernel")
        if base is None or not hasattr(base, "MPLinearKernel"):
            continue
        for selection_name in selection_names:
            selection = _import(selection_name)
            if selection is not None and hasattr(selection, "_POSSIBLE_KERNELS"):
                return VllmMixedPrecision(version, base, selection)
    searched = "; ".join(f"{b}.MPLinearKernel with _POSSIBLE_KERNELS in {' or '.join(s)}" for b, s in _LAYOUTS)
    raise VllmLayoutUnknown(
        f"vLLM {version} keeps its mixed-precision linear kernels in a place w4a16_rdna3 does not know "
        f"(searched: {searched}). Use a vLLM release this package supports (tested: 0.33.0, 0.34.0)."
    )
