"""Stand-in for ROCm's amdsmi: one AMD GPU whose arch is $FAKE_AMDSMI_ARCH (e.g. gfx1100).

vLLM decides "this is ROCm" and reads the gfx arch through amdsmi (vllm.platforms
rocm_platform_plugin, vllm.platforms.rocm._GCN_ARCH), and so does w4a16_rdna3.platform. Putting
this directory first on PYTHONPATH therefore mocks the GPU for both at the same level, with no
change to either. Only what those callers use is here.
"""

import os


class AmdSmiException(Exception):
    pass


class AmdSmiMemoryType:
    VRAM = 0


def amdsmi_init(*args, **kwargs) -> None:
    pass


def amdsmi_shut_down() -> None:
    pass


def amdsmi_get_processor_handles() -> list[str]:
    return ["gpu0"]


def amdsmi_get_gpu_asic_info(handle: str) -> dict:
    return {"target_graphics_version": os.environ["FAKE_AMDSMI_ARCH"], "market_name": "stand-in GPU"}


def amdsmi_get_gpu_device_uuid(handle: str) -> str:
    return "00000000-0000-0000-0000-000000000000"


def amdsmi_get_gpu_memory_total(handle: str, memory_type: int) -> int:
    return 24 << 30


def amdsmi_topo_get_link_type(a: str, b: str) -> dict:
    return {"type": 0, "hops": 0}


def amdsmi_topo_get_numa_node_number(handle: str) -> int:
    return 0
