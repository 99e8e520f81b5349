"""The compiler side of the interpreter: HIP source compiled for gfx1100 into parsed kernels, and
what to make of an instruction the interpreter does not model.

The interpreter models what Debian's clang 19 (the ISA check's compiler in CI) emits for these
kernels. On a ROCm machine the ISA check's clang is ROCm's own, which may emit instructions outside
that set: there an unmodelled one skips the test, saying so, where in CI it fails it.
"""

from __future__ import annotations

import contextlib
import functools
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from rdna3_isa.program import Kernel, kernel_symbols, parse_kernel
from rdna3_isa.wave import NotModelled
from w4a16_rdna3 import isa

ARCH = "gfx1100"
_HEADER_OF = {instance: source.header for source in isa.KERNEL_SOURCES for instance in source.instances}


def _compile_to_asm(toolchain: isa.Toolchain, source: str, stem: Path) -> str:
    """HIP `source` (which may include csrc/ headers) written to stem.hip, its gfx1100 assembly to stem.s."""
    tu = stem.with_suffix(".hip")
    tu.write_text(source)
    return isa.compile_to_asm(toolchain, tu, isa.CSRC, ARCH, stem.with_suffix(".s"))


def compile_source(toolchain: isa.Toolchain, source: str, stem: Path) -> dict[str, Kernel]:
    """Every kernel of HIP `source`, compiled for gfx1100 into stem.hip / stem.s, by symbol."""
    asm = _compile_to_asm(toolchain, source, stem)
    return {symbol: parse_kernel(asm, symbol) for symbol in kernel_symbols(asm)}


def compile_instance(toolchain: isa.Toolchain, instance: str, work_dir: Path) -> str:
    """The gfx1100 assembly of one kernel instance of isa.KERNEL_SOURCES, alone in its translation
    unit (work_dir/<instance as a file name>.hip / .s)."""
    source = isa.translation_unit(isa.KernelSource(_HEADER_OF[instance], (instance,)))
    return _compile_to_asm(toolchain, source, work_dir / re.sub(r"\W+", "_", instance).strip("_"))


@functools.cache
def is_fitted_compiler(clang: str) -> bool:
    """Whether `clang` is an LLVM 19 clang that is not AMD's (ROCm's): the output the interpreter models."""
    version = subprocess.run([clang, "--version"], capture_output=True, text=True).stdout
    return "clang version 19." in version and "AMD" not in version


@contextlib.contextmanager
def modelled_or_skip(toolchain: isa.Toolchain) -> Iterator[None]:
    """Run the body; an instruction the interpreter does not model fails it with the fitted compiler
    and skips it, saying which, with any other."""
    try:
        yield
    except NotModelled as unknown:
        if is_fitted_compiler(toolchain.clang):
            raise
        pytest.skip(f"{toolchain.clang} emitted code the RDNA3 interpreter does not model (it models Debian's "
                    f"clang 19): {unknown}")
