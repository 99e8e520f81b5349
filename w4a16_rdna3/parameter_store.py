"""How a kernel's post-load processing puts its tensors on a layer, under the checkpoint's names.

Under vLLM the loaded parameter objects must stay: vLLM's weight updates (reload_weights, RL
weight sync) load the next checkpoint into them and run the processing again, and captured graphs
keep reading their addresses. So tensors are stored through vLLM's own helpers, and a parameter the
kernel does not read is kept, marked retired. Without vLLM nothing reloads: plain parameters take
the old ones' place and an unread one is dropped.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch

from w4a16_rdna3.vllm_compat import VllmMixedPrecision


@dataclass(frozen=True)
class ParameterStore:
    """How post-load processing puts kernel tensors on a layer, under the checkpoint's names."""

    replace: Callable[[torch.nn.Module, str, torch.Tensor], None]
    retire: Callable[[torch.nn.Module, str], None]  # the kernel does not read this parameter


def _set_param(layer: torch.nn.Module, name: str, value: torch.Tensor | None) -> None:
    """Replace (or drop, for None) layer.<name>; the old tensor is freed with its last reference."""
    if hasattr(layer, name):
        delattr(layer, name)
    layer.register_parameter(name, None if value is None else torch.nn.Parameter(value, requires_grad=False))


def _drop_param(layer: torch.nn.Module, name: str) -> None:
    _set_param(layer, name, None)


def _mark_retired(layer: torch.nn.Module, name: str) -> None:
    """Keep an unread parameter, its loaded data and all, with vLLM 0.34.0's mark (`retired`). vLLM's
    layerwise weight update copies what processing makes back into the parameters the layer held
    before, by name: one dropped at this load could not take the next load's tensor (an in-order
    g_idx, then a shuffled one)."""
    getattr(layer, name).retired = True


def _replace_live(replace: Callable[[torch.nn.Module, str, torch.Tensor], None]) -> Callable:
    """`replace`, after which the parameter is read again: any earlier `_mark_retired` is lifted."""

    def store(layer: torch.nn.Module, name: str, tensor: torch.Tensor) -> None:
        replace(layer, name, tensor)
        vars(getattr(layer, name)).pop("retired", None)

    return store


def parameter_store(vllm: VllmMixedPrecision | None) -> ParameterStore:
    """vLLM's own helpers where it has them (0.34.0), else the same behaviour from its replace_parameter:
    its weight updates need the loaded parameter objects kept, unread ones included. Without vLLM
    (nothing reloads) plain parameters take the old ones' place and an unread one is dropped."""
    if vllm is None:
        return ParameterStore(_set_param, _drop_param)
    replace = vllm.set_kernel_parameter or _replace_live(vllm.replace_parameter or _set_param)
    return ParameterStore(replace, vllm.retire_parameter or _mark_retired)
