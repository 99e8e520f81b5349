"""The ROCm build's host code, compiled as a ROCm machine's `pip install` compiles it (part of
`w4a16-rdna3 isa`).

The ROCm build hipifies csrc/ (hipify_csrc.py) and compiles every top-level source with the HIP
compiler, against ROCm PyTorch's headers. This check hipifies a copy of csrc/ the same way and
compiles each source host-side for gfx11 (--cuda-host-only; the device side is the ISA check's),
syntax only, with the defines CMakeLists.txt gives the hip module, against ROCm PyTorch's include
tree (rocm_torch_include.py makes one from the installed torch where that is not a ROCm wheel). It
catches a CUDA name hipify does not translate, a runtime call HIP lacks, a torch API that ROCm's
headers spell differently, and code that hipify itself breaks (it once turned
`std::max({...})` into HIP's two-argument `::max`), per source and in under a minute; the whole build,
device code and link included, is tests/test_rocm_build.py's (a minute).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sysconfig
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from w4a16_rdna3.hipify_csrc import hipify_csrc
from w4a16_rdna3.rocm_torch_include import rocm_torch_include


class HipHostCheckError(RuntimeError):
    """hipify or a host compile failed (the message holds the compiler's)."""


def host_compile_command(clang: str, arch: str, include_dir: Path, std: str = "c++17") -> list[str]:
    """`clang` compiling HIP source host-side only for `arch`, with the defines the ROCm build gives
    its modules (CMakeLists.txt); the caller adds its output and sources."""
    return [
        clang, "-x", "hip", "--cuda-host-only", f"--offload-arch={arch}", "-nogpulib",
        "-D__HIP_PLATFORM_AMD__=1", "-DUSE_ROCM=1", "-DHIPBLAS_V2", "-O1", f"-std={std}", "-I", str(include_dir),
    ]


def module_defines(arch: str) -> list[str]:
    """The definitions of the hip build's one module, w4a16_rdna3._C (CMakeLists.txt)."""
    return [
        "-DW4A16_OPS_NAMESPACE=w4a16_rdna3", "-DW4A16_MODULE_NAME=_C", '-DW4A16_BACKEND="hip"',
        f'-DW4A16_ARCHES="{arch}"', "-DTORCH_EXTENSION_NAME=_C", "-DTORCH_API_INCLUDE_EXTENSION_H",
        # What the module inherits from torch's CMake target (Caffe2Targets.cmake).
        "-DUSE_DISTRIBUTED", "-DUSE_C10D_GLOO", "-DUSE_RPC", "-DUSE_TENSORPIPE",
    ]


def compile_source(command: list[str], source: Path) -> str | None:
    """None when `source` compiles, else the command and the compiler's errors."""
    result = subprocess.run([*command, str(source)], capture_output=True, text=True)
    if result.returncode == 0:
        return None
    return f"{source.name}:\n{' '.join(command)} {source}\n{result.stderr}"


def check_hip_host(clang: str, csrc: str | Path, arch: str = "gfx1100", *, keep_dir: str | Path | None = None) -> list[str]:
    """Hipify a copy of `csrc` and compile every source the ROCm build would, host-side for `arch`,
    with `clang`, against ROCm PyTorch's headers.

    Returns the names of the sources compiled; raises HipHostCheckError when hipify gives no
    source or any of them fails. With keep_dir, the hipified copy stays in keep_dir/hip_host.
    """
    with tempfile.TemporaryDirectory(prefix="w4a16_hip_host_") as tmp:
        work = Path(keep_dir) / "hip_host" if keep_dir else Path(tmp) / "csrc"
        if work.exists():
            shutil.rmtree(work)
        shutil.copytree(csrc, work)
        # hipify reports its success on stderr: noise in the isa command's output.
        with contextlib.redirect_stderr(io.StringIO()):
            sources = hipify_csrc(work)
        if not sources:
            raise HipHostCheckError(f"hipify found no .cu or .cpp source in {csrc}")
        torch_include = rocm_torch_include(Path(tmp) / "torch")
        # C++20, as the build takes it from torch's CMake target for torch >= 2.14 (whose headers
        # need it); the python headers for torch/extension.h and build_info's pybind11.
        command = [
            *host_compile_command(clang, arch, work, std="c++20"), "-fsyntax-only", *module_defines(arch),
            *torch_include.flags(), "-isystem", sysconfig.get_paths()["include"],
        ]
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            failures = [f for f in pool.map(lambda source: compile_source(command, source), sources) if f]
        if failures:
            raise HipHostCheckError(f"host code for {arch} failed to compile in {len(failures)} of "
                                    f"{len(sources)} sources:\n" + "\n".join(failures))
    return [source.name for source in sources]
