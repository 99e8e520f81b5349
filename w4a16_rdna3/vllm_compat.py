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
    def parameter_store(self) -> "ParameterStore | None":
        """The helpers vLLM's own MPLinearKernel module stores kernel tensors with; None if it has none.

        `replace_parameter` keeps the loaded parameter object (its loader and checkpoint record,
        which vLLM's weight reload needs) and refills it, in place where the layout allows, so
        captured graphs keep their addresses. `retire_parameter` (vLLM 0.34.0) keeps a loaded
        parameter the kernel does not read registered, so it can be loaded again; a vLLM without
        it sets such a parameter to None, as its own kernels then do.
        """
        replace = getattr(self.base_module, "replace_parameter", None)
        if replace is None:
            return None
        retire = getattr(self.base_module, "retire_parameter", None)
        if retire is None:
            return ParameterStore(replace, lambda layer, name: replace(layer, name, None))
        return ParameterStore(replace, retire)


@dataclass(frozen=True)
class ParameterStore:
    """How post-load processing puts kernel tensors on a layer, under the checkpoint's names."""

    replace: Callable[[torch.nn.Module, str, torch.Tensor], None]
    retire: Callable[[torch.nn.Module, str], None]  # the kernel does not read this parameter


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
