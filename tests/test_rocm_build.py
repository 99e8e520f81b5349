"""The ROCm install itself, on a machine without ROCm: setup.py's ROCm branch, CMake, the wheel.

What `pip install --no-build-isolation .` runs on a ROCm machine, for gfx1100, here as
`pip wheel` of a copy of the repository: setup.py finds a ROCm toolkit (ROCM_HOME) and plans the
hip build, CMakeLists.txt's hip branch configures CMake's HIP language with that toolkit's clang,
csrc/ is hipified at configure time, every source is compiled host and device side, and the module
is linked and packed into the wheel. Stand-ins take ROCm's place:
- torch is declared a ROCm build (`torch.version.hip`, set by a sitecustomize on PYTHONPATH);
- torch's ROCm headers are made from the installed torch's CUDA ones (w4a16_rdna3.rocm_torch_include)
  and reach the build through CMAKE_ARGS;
- a ROCm toolkit directory: clang (the ISA check's), the HIP headers, and ROCm's `hip-lang` CMake
  package (which CMake's HIP language loads from the ROCm root), written here: the HIP runtime
  target, naming the HIP headers' runtime library (Debian's libamdhip64). Debian's own `hip-lang`
  package adds -isystem /usr/include, which breaks libstdc++'s #include_next under clang;
- `-nogpulib`: no ROCm device libraries (the kernels call none of their functions).
The module then loads into this CPU torch with stubs for the symbols only a ROCm torch's libraries
hold (c10::cuda and at::cuda, which its ops would call; nothing calls them at load): its static
initialisation (HIP's code-object registration, TORCH_LIBRARY, pybind11) runs and it registers its
ops; and, with the wheel installed and the GPU stood in for at the amdsmi level
(tests/vllm/fake_gpu), `w4a16-rdna3 info` reports the hip build and picks our kernel for gfx1100
layers. Needs the ISA check's clang and HIP headers, cmake (>= 3.21) and the HIP runtime library; CI
installs them (.ci/install-hip-toolchain.sh). About 75 s on 2 cores.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from w4a16_rdna3 import isa
from w4a16_rdna3.rocm_torch_include import rocm_torch_include

REPO = Path(__file__).resolve().parents[1]
FAKE_AMDSMI = Path(__file__).resolve().parent / "vllm" / "fake_gpu"
LIBRARY_DIRS = ("/opt/rocm/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib")
NOT_SOURCES = (".git", "build", "dist", "*.egg-info", "__pycache__", ".*cache", ".devbuild", ".benchmarks", "*.so")

TOOLCHAIN, NO_TOOLCHAIN_REASON = isa.find_toolchain()
HIP_RUNTIME = next((Path(d) / "libamdhip64.so" for d in LIBRARY_DIRS if (Path(d) / "libamdhip64.so").exists()), None)
pytestmark = [
    # Under a real ROCm PyTorch the stand-ins would shadow it (its ROCm CMake config, stubs preloaded
    # over its own c10::cuda symbols): there, `pip install` built the real module and the GPU tests run it.
    pytest.mark.skipif(torch.version.hip is not None, reason="ROCm build test skipped: PyTorch is a ROCm build "
                       f"(HIP {torch.version.hip}); this test stands in for ROCm on machines without it"),
    pytest.mark.skipif(TOOLCHAIN is None, reason=f"ROCm build test skipped: {NO_TOOLCHAIN_REASON}"),
    pytest.mark.skipif(shutil.which("cmake") is None, reason="ROCm build test skipped: no cmake (apt-get install cmake)"),
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


def rocm_toolkit(root: Path, clang: str, hip_runtime: Path) -> Path:
    """The layout setup.py looks for under ROCM_HOME (llvm/bin/clang++, include/hip) and CMake under
    the ROCm root (lib/cmake/hip-lang)."""
    (root / "llvm/bin").mkdir(parents=True)
    (root / "llvm/bin/clang++").symlink_to(shutil.which(clang) or clang)
    (root / "include").mkdir()
    hip_headers = next(d for d in (Path("/opt/rocm/include/hip"), Path("/usr/include/hip")) if d.is_dir())
    (root / "include/hip").symlink_to(hip_headers)
    (root / "lib/cmake/hip-lang").mkdir(parents=True)
    (root / "lib/cmake/hip-lang/hip-lang-config.cmake").write_text(HIP_LANG_STANDIN.format(library=hip_runtime.resolve()))
    return root


# Run in a fresh interpreter: load the module (argv[2]) after the stub library (argv[1]), print its
# build facts and op schemas.
LOAD_MODULE = """\
import ctypes, importlib.util, json, sys
import torch
ctypes.CDLL(sys.argv[1], mode=ctypes.RTLD_GLOBAL)
spec = importlib.util.spec_from_file_location("_C", sys.argv[2])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
ops = {name: str(getattr(torch.ops.w4a16_rdna3, name).default._schema) for name in ("gemm", "gemm_dot2", "gemm_wmma")}
print(json.dumps({"build_info": module.build_info(), "ops": ops}))
"""


def rocm_torch_stubs(module: Path, work: Path, clang: str) -> Path:
    """A library defining, as zeroed words, the symbols `module` needs from a ROCm torch's own
    libraries (c10::cuda, at::cuda: their mangled names hold `4cuda`)."""
    undefined = subprocess.run(["nm", "-D", "--undefined-only", str(module)], capture_output=True, text=True,
                               check=True).stdout.split()
    needed = sorted({name.split("@")[0] for name in undefined if "4cuda" in name})
    assert needed, f"{module.name} needs nothing from a ROCm torch's libraries: not the hip build?"
    source = work / "rocm_torch_stubs.c"
    source.write_text("".join(f'void* stub{i} __asm__("{name}") = 0;\n' for i, name in enumerate(needed)))
    library = work / "librocm_torch_stubs.so"
    subprocess.run([clang, "-x", "c", "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    return library


@dataclass(frozen=True)
class RocmWheel:
    """The wheel the ROCm install path built, its module, and how to run beside it."""

    wheel: Path
    module: Path  # the wheel's w4a16_rdna3/_C...so, extracted
    stubs: Path  # rocm_torch_stubs of the module
    site: Path  # the sitecustomize that declares torch a ROCm build
    env: dict[str, str]


@pytest.fixture(scope="module")
def rocm_wheel(tmp_path_factory: pytest.TempPathFactory) -> RocmWheel:
    assert TOOLCHAIN is not None and HIP_RUNTIME is not None
    work = tmp_path_factory.mktemp("rocm_build")
    source = work / "src"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(*NOT_SOURCES))
    rocm = rocm_toolkit(work / "rocm", TOOLCHAIN.clang, HIP_RUNTIME)
    torch_include = rocm_torch_include(work / "torch")
    site = work / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text('import torch\n\ntorch.version.hip = "6.4.0"  # a ROCm build of torch\n')
    cmake_args = [
        f"-DCMAKE_HIP_COMPILER_ROCM_ROOT={rocm}",
        f"-DCMAKE_HIP_FLAGS=-nogpulib -idirafter {torch_include.standin_dir}",
        f"-DW4A16_EXTRA_INCLUDE_DIRS={';'.join(map(str, torch_include.system_dirs))}",
    ]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
        "ROCM_HOME": str(rocm), "W4A16_RDNA3_BUILD": "1", "W4A16_RDNA3_ARCHS": "gfx1100",
        "MAX_JOBS": str(os.cpu_count() or 1), "CMAKE_ARGS": shlex.join(cmake_args),
    }
    wheels = work / "wheels"
    command = [sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-w", str(wheels), str(source)]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
    (wheel,) = wheels.glob("w4a16_rdna3-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        modules = [name for name in archive.namelist() if name.startswith("w4a16_rdna3/_C.") and name.endswith(".so")]
        assert len(modules) == 1, f"expected the hip build's one module in {wheel.name}, found {modules}"
        module = Path(archive.extract(modules[0], work / "extracted"))
    return RocmWheel(wheel, module, rocm_torch_stubs(module, work, TOOLCHAIN.clang), site, env)


def test_the_module_carries_gfx1100_code(rocm_wheel: RocmWheel) -> None:
    # The HIP fat binary's bundle names each code object's target.
    assert b"hipv4-amdgcn-amd-amdhsa--gfx1100" in rocm_wheel.module.read_bytes()


def test_the_module_loads_and_registers_its_ops(rocm_wheel: RocmWheel) -> None:
    command = [sys.executable, "-c", LOAD_MODULE, str(rocm_wheel.stubs), str(rocm_wheel.module)]
    loaded = subprocess.run(command, capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr[-4000:]
    registered = json.loads(loaded.stdout.splitlines()[-1])
    assert registered["build_info"] == {"backend": "hip", "emulation": False, "arches": ["gfx1100"],
                                        "decode_group_multiple": 32}
    assert set(registered["ops"]) == {"gemm", "gemm_dot2", "gemm_wmma"}
    assert registered["ops"]["gemm"] == (
        "w4a16_rdna3::gemm(Tensor a, Tensor b_q, Tensor scales, Tensor? zeros, Tensor? perm, Tensor? bias) -> Tensor"
    )


def test_info_on_a_gfx1100_picks_the_native_kernel(rocm_wheel: RocmWheel, tmp_path: Path) -> None:
    """The installed wheel on a stood-in ROCm machine with a gfx1100: what the package makes of it."""
    target = tmp_path / "site-packages"
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(rocm_wheel.wheel)]
    subprocess.run(install, check=True, capture_output=True)
    env = {**rocm_wheel.env, "PYTHONPATH": os.pathsep.join(map(str, (rocm_wheel.site, FAKE_AMDSMI, target))),
           "LD_PRELOAD": str(rocm_wheel.stubs), "FAKE_AMDSMI_ARCH": "gfx1100"}
    info = subprocess.run([sys.executable, "-m", "w4a16_rdna3", "info"], cwd=tmp_path, env=env, capture_output=True,
                          text=True)
    assert info.returncode == 0, info.stderr[-4000:]
    assert "built: backend hip, arches gfx1100" in info.stdout, info.stdout
    for dtype in ("float16", "bfloat16"):
        assert f" {dtype} GPTQ layer: RDNA3W4A16LinearKernel" in info.stdout, info.stdout
