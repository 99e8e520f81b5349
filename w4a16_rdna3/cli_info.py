"""`w4a16-rdna3 info`: what this machine is, what was built, and which kernel vLLM would get."""

from __future__ import annotations

import platform as host_platform

import torch

from w4a16_rdna3 import _ops, kernels, platform

# A typical GPTQ layer: Llama-3-8B's gate_proj, 4-bit, group size 128, act-order off.
TYPICAL_LAYER = {"k": 4096, "n": 14336, "group_size": 128}


def multiprocessors(count: int, arch: str) -> str:
    """What torch's multi_processor_count counts on this arch. HIP runs RDNA (gfx10 and later) in WGP
    mode by default and counts WGPs there, two CUs each: 48 on an RX 7900 XTX. The kernels' launch
    plans take the count as it is, one SM's share of work per WGP."""
    if arch.startswith("sm_"):
        return f"{count} SMs"
    if arch.startswith("gfx1"):  # gfx10xx, gfx11xx, gfx12xx: RDNA
        return f"{count} WGPs ({2 * count} CUs)"
    return f"{count} CUs"


def _device_lines() -> list[str]:
    """One line per GPU torch sees, by index: the kernels run on whichever of them a tensor is on."""
    if not torch.cuda.is_available():
        return ["none visible to torch (CPU only)"]
    lines = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        arch = getattr(props, "gcnArchName", "") or f"sm_{props.major}{props.minor}"
        lines.append(f"{index}: {props.name} ({arch}, {multiprocessors(props.multi_processor_count, arch)})")
    return lines


def _build_line(info: dict | None, reason: str) -> str:
    if info is None:
        return f"not built ({reason})"
    arches = ", ".join(info.get("arches", [])) or "?"
    line = f"built: backend {info.get('backend')}, arches {arches}"
    multiple = info.get("decode_group_multiple")
    if multiple is not None:
        line += f"; decode kernel for group sizes that are multiples of {multiple} or K (others: WMMA)"
    return line


def info_lines() -> list[str]:
    torch_backend = f"HIP {torch.version.hip}" if torch.version.hip else (
        f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU build")
    first_gpu, *other_gpus = _device_lines()
    lines = [
        f"python          {host_platform.python_version()}",
        f"torch           {torch.__version__} ({torch_backend})",
        f"GPU (torch)     {first_gpu}",
        *(f"                {gpu}" for gpu in other_gpus),
        f"GPU arch        {platform.gcn_arch() or 'none'} ({platform.gcn_arch_reason()})",
        f"native kernels  {_build_line(_ops.native_build_info(), _ops.native_unavailable_reason())}",
        f"RDNA3 emulation {_build_line(_ops.emulation_build_info(), _ops.emulation_unavailable_reason())}",
    ]
    k, n, g = TYPICAL_LAYER["k"], TYPICAL_LAYER["n"], TYPICAL_LAYER["group_size"]
    for dtype in (torch.float16, torch.bfloat16):
        selection = kernels.choose_kernel(kernels.gptq_layer_config(k, n, g, act_dtype=dtype))
        chosen = selection.kernel.__name__ if selection.kernel is not None else "none"
        lines.append(f"kernel for a {k}x{n} G={g} {str(dtype).removeprefix('torch.')} GPTQ layer: {chosen}")
        for name, reason in selection.refusals.items():
            lines.append(f"  {name} refused: {reason}")
    return lines


def print_info() -> int:
    print("\n".join(info_lines()))
    return 0
