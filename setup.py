"""Build of w4a16_rdna3: the Python package, plus the native extension when torch and a GPU compiler allow.

The native kernels are built with CMake (CMakeLists.txt) against the torch that is installed,
so they need `pip install --no-build-isolation .`:
  ROCm torch + ROCm's clang  -> w4a16_rdna3._C for the arches in W4A16_RDNA3_ARCHS
  CUDA torch + nvcc          -> w4a16_rdna3._C (CUDA native) and w4a16_rdna3._C_rdna3_emu
                                (RDNA3 emulation), for the arches in TORCH_CUDA_ARCH_LIST (9.0 is
                                built as 9.0a, for wgmma: CMakeLists.txt)
  anything else              -> the pure-Python package (Triton and reference paths), with one
                                line saying why the native kernels were not built.
W4A16_RDNA3_BUILD=auto (default) | 1 (build or fail) | 0 (never build). MAX_JOBS caps parallel
compile jobs; CMAKE_ARGS adds arguments to the CMake configure step.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
BUILD_MODE_VAR = "W4A16_RDNA3_BUILD"
HIP_ARCHS_VAR = "W4A16_RDNA3_ARCHS"
DEFAULT_HIP_ARCHS = "gfx1100;gfx1101;gfx1102;gfx1151"


@dataclass(frozen=True)
class NativeBuild:
    """What CMake is asked to build, and with which arguments."""

    backend: str  # "hip" or "cuda"
    modules: tuple[str, ...]  # full module names, e.g. "w4a16_rdna3._C"
    cmake_args: tuple[str, ...]


class NoNativeBuild(Exception):
    """The native build is impossible here; the message says why, in plain words."""


def build_mode() -> str:
    mode = os.environ.get(BUILD_MODE_VAR, "auto").strip().lower() or "auto"
    if mode not in ("auto", "1", "0"):
        raise SystemExit(f"{BUILD_MODE_VAR} must be auto, 1 or 0, got {mode!r}")
    return mode


def find_cmake() -> str:
    found = shutil.which("cmake")
    if found:
        return found
    try:
        import cmake  # the PyPI package ships a CMake binary
    except ImportError:
        raise NoNativeBuild("cmake (>= 3.21) is not installed") from None
    return str(Path(cmake.CMAKE_BIN_DIR) / "cmake")


def first_toolkit(candidates: list[str | None], compiler: str, header: str) -> Path | None:
    """The first directory that holds both the compiler and the runtime header.

    The `which` candidate may be a wrapper script outside the toolkit (/usr/local/bin/nvcc
    exec'ing /usr/local/cuda-13.0/bin/nvcc): its parent has no include/ and is skipped.
    """
    for candidate in candidates:
        if not candidate:
            continue
        home = Path(candidate)
        if (home / compiler).exists() and (home / header).exists():
            return home
    return None


def parent_of_bin(program: str) -> str | None:
    found = shutil.which(program)
    return str(Path(found).resolve().parent.parent) if found else None


def cuda_arch_list(torch) -> str:
    """TORCH_CUDA_ARCH_LIST as torch's CMake reads it ("9.0;8.6+PTX")."""
    configured = os.environ.get("TORCH_CUDA_ARCH_LIST", "").strip()
    if configured:
        return configured
    if torch.cuda.is_available():
        capabilities = {torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())}
        return ";".join(f"{major}.{minor}" for major, minor in sorted(capabilities))
    # No GPU visible at build time: every arch this torch was built for.
    arches = []
    for name in torch.cuda.get_arch_list():
        match = re.fullmatch(r"sm_(\d+)(\d)([a-z]?)", name)
        if match:
            arches.append(f"{match[1]}.{match[2]}{match[3]}")
    if not arches:
        raise NoNativeBuild("no TORCH_CUDA_ARCH_LIST given, no GPU visible and torch lists no arch")
    return ";".join(arches)


def hip_arch_list(hip_compiler: Path) -> str:
    """W4A16_RDNA3_ARCHS as given, or the default arches this ROCm's compiler knows.

    The default names gfx1151, which ROCm releases before 6.2 do not know: dropped then (with a
    note), so that an older ROCm still builds gfx1100. An explicit list is taken as is.
    """
    given = os.environ.get(HIP_ARCHS_VAR, "").strip()
    arches = [a for a in re.split(r"[;, ]+", given or DEFAULT_HIP_ARCHS) if a]
    bad = [a for a in arches if not re.fullmatch(r"gfx[0-9a-f]+", a)]
    if bad or not arches:
        raise SystemExit(f"{HIP_ARCHS_VAR} must list gfx arches (e.g. gfx1100;gfx1151), got {bad or arches}")
    if given:
        return ";".join(arches)
    known = [a for a in arches if offload_arch_known(hip_compiler, a)]
    if len(known) < len(arches):
        print(f"w4a16_rdna3: {hip_compiler} does not know {sorted(set(arches) - set(known))}: not built",
              file=sys.stderr)
    if "gfx1100" not in known:
        raise NoNativeBuild(f"{hip_compiler} cannot compile for gfx1100")
    return ";".join(known)


def offload_arch_known(hip_compiler: Path, arch: str) -> bool:
    probe = [str(hip_compiler), "-x", "hip", "--cuda-device-only", f"--offload-arch={arch}",
             "-nogpulib", "-nogpuinc", "-fsyntax-only", os.devnull]
    return subprocess.run(probe, capture_output=True).returncode == 0


def cuda_library_headers(cuda: Path) -> list[str]:
    """Header dirs of the CUDA math libraries, when the toolkit at `cuda` lacks them.

    torch's ATen/cuda/CUDAContext.h includes cusparse.h and cublas_v2.h. A minimal toolkit (nvcc and
    the runtime only) has neither; CUDA wheels of torch depend on the nvidia-* packages, which ship
    those headers in site-packages/nvidia/<package>/include.
    """
    if (cuda / "include/cusparse.h").exists():
        return []
    try:
        import nvidia
    except ImportError:
        return []
    found = {str(h.parent) for root in nvidia.__path__ for h in Path(root).glob("*/include/cusparse.h")}
    found |= {str(h.parent) for root in nvidia.__path__ for h in Path(root).glob("*/include/cublas_v2.h")}
    return sorted(found)


def plan_native_build() -> NativeBuild:
    """The native build this machine allows; raises NoNativeBuild with the reason otherwise."""
    try:
        import torch
        import torch.utils
    except ImportError:
        raise NoNativeBuild(
            "torch is not importable at build time; install torch first, then "
            "pip install --no-build-isolation"
        ) from None
    cmake = find_cmake()
    common = [
        f"-DPython_EXECUTABLE={sys.executable}",
        f"-DCMAKE_PREFIX_PATH={torch.utils.cmake_prefix_path}",
        f"-DW4A16_EXT_SUFFIX={sysconfig.get_config_var('EXT_SUFFIX')}",
        "-DCMAKE_BUILD_TYPE=Release",
    ]
    if shutil.which("ninja"):
        common.append("-GNinja")
    common += shlex.split(os.environ.get("CMAKE_ARGS", ""))

    if torch.version.hip:
        rocm = first_toolkit(
            [os.environ.get("ROCM_HOME"), os.environ.get("ROCM_PATH"), parent_of_bin("hipcc"), "/opt/rocm"],
            "llvm/bin/clang++",
            "include/hip/hip_runtime.h",
        )
        if rocm is None:
            raise NoNativeBuild(
                f"torch {torch.__version__} is a ROCm build, but no ROCm with llvm/bin/clang++ and HIP "
                "headers was found (set ROCM_HOME)"
            )
        return NativeBuild(
            backend="hip",
            modules=("w4a16_rdna3._C",),
            cmake_args=(
                cmake,
                *common,
                "-DW4A16_BACKEND=hip",
                f"-DW4A16_HIP_ARCHS={hip_arch_list(rocm / 'llvm/bin/clang++')}",
                f"-DCMAKE_HIP_COMPILER={rocm / 'llvm/bin/clang++'}",
                f"-DROCM_PATH={rocm}",
                f"-DCMAKE_PREFIX_PATH={torch.utils.cmake_prefix_path};{rocm}",
            ),
        )
    if torch.version.cuda:
        cuda = first_toolkit(
            [
                os.environ.get("CUDA_HOME"),
                os.environ.get("CUDA_PATH"),
                parent_of_bin("nvcc"),
                "/usr/local/cuda",
            ],
            "bin/nvcc",
            "include/cuda_runtime.h",
        )
        if cuda is None:
            raise NoNativeBuild(
                f"torch {torch.__version__} is a CUDA build, but no CUDA toolkit with nvcc was found "
                "(set CUDA_HOME)"
            )
        return NativeBuild(
            backend="cuda",
            modules=("w4a16_rdna3._C", "w4a16_rdna3._C_rdna3_emu"),
            cmake_args=(
                cmake,
                *common,
                "-DW4A16_BACKEND=cuda",
                f"-DTORCH_CUDA_ARCH_LIST={cuda_arch_list(torch)}",
                f"-DCUDA_TOOLKIT_ROOT_DIR={cuda}",
                f"-DCMAKE_CUDA_COMPILER={cuda / 'bin/nvcc'}",
                f"-DW4A16_EXTRA_INCLUDE_DIRS={';'.join(cuda_library_headers(cuda))}",
            ),
        )
    raise NoNativeBuild(f"torch {torch.__version__} is built for neither ROCm nor CUDA")


def decide() -> tuple[NativeBuild | None, str]:
    """(the build to run or None, the one-line reason when None)."""
    mode = build_mode()
    if mode == "0":
        return None, f"{BUILD_MODE_VAR}=0"
    try:
        return plan_native_build(), ""
    except NoNativeBuild as why:
        if mode == "1":
            raise SystemExit(f"w4a16_rdna3: {BUILD_MODE_VAR}=1 but the native build is impossible: {why}")
        return None, str(why)


def runtime_requirements() -> list[str]:
    """torch and numpy; Triton only beside a CPU build of torch (for TRITON_INTERPRET=1).

    GPU builds of torch bring their own Triton: ROCm wheels as pytorch-triton-rocm, which a plain
    "triton" requirement would overwrite with PyPI's CUDA build.
    """
    try:
        import torch
    except ImportError:
        return ["torch", "numpy"]
    gpu_torch = bool(torch.version.hip or torch.version.cuda)
    return ["torch", "numpy"] if gpu_torch else ["torch", "numpy", "triton"]


NATIVE, SKIP_REASON = decide()


class CMakeBuild(build_ext):
    """Configures and builds every module with one CMake run, into the paths setuptools expects."""

    def build_extensions(self) -> None:
        assert NATIVE is not None
        outputs = {ext.name: Path(self.get_ext_fullpath(ext.name)).resolve() for ext in self.extensions}
        output_dirs = {path.parent for path in outputs.values()}
        assert len(output_dirs) == 1, "all modules live in the w4a16_rdna3 package"
        build_dir = Path(self.build_temp).resolve() / f"cmake-{NATIVE.backend}"
        build_dir.mkdir(parents=True, exist_ok=True)
        jobs = os.environ.get("MAX_JOBS") or str(os.cpu_count() or 1)
        configure = [*NATIVE.cmake_args, "-S", str(ROOT), "-B", str(build_dir),
                     f"-DW4A16_OUTPUT_DIR={output_dirs.pop()}"]
        print("w4a16_rdna3:", shlex.join(configure), flush=True)
        subprocess.run(configure, check=True)
        subprocess.run([NATIVE.cmake_args[0], "--build", str(build_dir), "-j", jobs], check=True)
        missing = [str(path) for path in outputs.values() if not path.exists()]
        if missing:
            raise SystemExit(f"w4a16_rdna3: CMake finished but did not produce {missing}")


class BuildPyWithNote(build_py):
    """Says once, during the build, why an install came out pure Python."""

    def run(self) -> None:
        if NATIVE is None:
            print(f"w4a16_rdna3: native kernels not built: {SKIP_REASON}. "
                  "The Triton and reference paths are installed.", file=sys.stderr, flush=True)
        super().run()


setup(
    install_requires=runtime_requirements(),
    ext_modules=[Extension(name, sources=[]) for name in NATIVE.modules] if NATIVE else [],
    cmdclass={"build_ext": CMakeBuild, "build_py": BuildPyWithNote},
    zip_safe=False,
)
