"""The ROCm build itself, on a machine without ROCm: CMakeLists.txt's hip branch, configured and built.

What a ROCm machine's `pip install` runs (setup.py: CMake with W4A16_BACKEND=hip), for gfx1100:
CMake's HIP language with clang as the HIP compiler, csrc/ hipified at configure time, every
source compiled host and device side, and the module linked. Three stand-ins take ROCm's place:
- torch's ROCm headers, made from the installed torch's CUDA ones (w4a16_rdna3.rocm_torch_include);
- ROCm's `hip-lang` CMake package (which CMake's HIP language loads from the ROCm root), written
  here: the HIP runtime target, naming the HIP runtime library of the HIP headers' package
  (Debian's libamdhip64); Debian's own `hip-lang` package adds -isystem /usr/include, which
  breaks libstdc++'s #include_next with clang;
- `-nogpulib`: no ROCm device libraries (the kernels call none of their functions).
The module cannot be imported here: its c10::cuda symbols live in a ROCm torch's libc10_hip.
Needs the ISA check's clang and HIP headers, cmake (>= 3.21) and the HIP runtime library; CI
installs them (.ci/install-hip-toolchain.sh). About a minute on 2 cores.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from w4a16_rdna3 import isa
from w4a16_rdna3.rocm_torch_include import rocm_torch_include

REPO = Path(__file__).resolve().parents[1]
LIBRARY_DIRS = ("/opt/rocm/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib")

TOOLCHAIN, NO_TOOLCHAIN_REASON = isa.find_toolchain()
CMAKE = shutil.which("cmake")
HIP_RUNTIME = next((Path(d) / "libamdhip64.so" for d in LIBRARY_DIRS if (Path(d) / "libamdhip64.so").exists()), None)
pytestmark = [
    pytest.mark.skipif(TOOLCHAIN is None, reason=f"ROCm build test skipped: {NO_TOOLCHAIN_REASON}"),
    pytest.mark.skipif(CMAKE is None, reason="ROCm build test skipped: no cmake (apt-get install cmake)"),
    pytest.mark.skipif(HIP_RUNTIME is None, reason="ROCm build test skipped: no libamdhip64.so (apt-get install "
                       "libamdhip64-dev)"),
]

HIP_LANG_STANDIN = """\
# Stand-in for ROCm's hip-lang CMake package (tests/test_rocm_build.py): the runtime target CMake's
# HIP language links every HIP target with.
add_library(hip-lang::amdhip64 SHARED IMPORTED)
set_target_properties(hip-lang::amdhip64 PROPERTIES
  IMPORTED_LOCATION "{library}"
  INTERFACE_COMPILE_DEFINITIONS "$<$<COMPILE_LANGUAGE:HIP>:__HIP_ROCclr__=1>")
add_library(hip-lang::device INTERFACE IMPORTED)
set_target_properties(hip-lang::device PROPERTIES
  INTERFACE_LINK_LIBRARIES hip-lang::amdhip64
  INTERFACE_LINK_OPTIONS "$<$<LINK_LANGUAGE:HIP>:--hip-link>")
set(_CMAKE_HIP_DEVICE_RUNTIME_TARGET hip-lang::device)
"""


def run(command: list[str], cwd: Path) -> None:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"


def test_the_rocm_build_makes_a_gfx1100_module(tmp_path: Path) -> None:
    import torch.utils

    assert TOOLCHAIN is not None and CMAKE is not None and HIP_RUNTIME is not None
    rocm_root = tmp_path / "rocm"
    (rocm_root / "lib/cmake/hip-lang").mkdir(parents=True)
    (rocm_root / "lib/cmake/hip-lang/hip-lang-config.cmake").write_text(
        HIP_LANG_STANDIN.format(library=HIP_RUNTIME.resolve())
    )
    torch_include = rocm_torch_include(tmp_path / "torch")
    out = tmp_path / "out"
    configure = [
        CMAKE, "-S", str(REPO), "-B", str(tmp_path / "build"),
        *(["-G", "Ninja"] if shutil.which("ninja") else []),
        "-DW4A16_BACKEND=hip", "-DW4A16_HIP_ARCHS=gfx1100", "-DCMAKE_BUILD_TYPE=Release",
        f"-DCMAKE_HIP_COMPILER={shutil.which(TOOLCHAIN.clang) or TOOLCHAIN.clang}",
        f"-DCMAKE_HIP_COMPILER_ROCM_ROOT={rocm_root}",
        f"-DCMAKE_HIP_FLAGS=-nogpulib -idirafter {torch_include.standin_dir}",
        f"-DCMAKE_PREFIX_PATH={torch.utils.cmake_prefix_path}", f"-DPython_EXECUTABLE={sys.executable}",
        f"-DW4A16_EXTRA_INCLUDE_DIRS={';'.join(map(str, torch_include.system_dirs))}",
        f"-DW4A16_OUTPUT_DIR={out}",
    ]
    run(configure, tmp_path)
    run([CMAKE, "--build", str(tmp_path / "build"), "-j", str(os.cpu_count() or 1)], tmp_path)

    modules = list(out.glob("_C.*"))
    assert len(modules) == 1, f"expected one _C module in {out}, found {modules}"
    # The HIP fat binary's bundle names each code object's target: the module carries gfx1100's.
    assert b"hipv4-amdgcn-amd-amdhsa--gfx1100" in modules[0].read_bytes()
    # The configure step's hipify ran: the build compiled the translations, not the CUDA sources.
    sources = (tmp_path / "build/hipified/csrc/sources.txt").read_text().split()
    assert {Path(s).name for s in sources} >= {"gemm_dot2.hip", "gemm_wmma.hip", "ops_hip.cpp"}
