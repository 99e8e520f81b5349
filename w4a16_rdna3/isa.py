"""`w4a16-rdna3 isa`: compile every kernel for RDNA3 with clang (no GPU needed) and check its ISA.

Each kernel header in csrc/ (pure device code: no torch) is compiled device-only for each arch
through a small generated translation unit that names every kernel instantiation the launchers
use. In the assembly, per kernel:
- WMMA kernels (name contains "wmma") must contain v_wmma_f32_16x16x16_f16 or _bf16;
- decode kernels (name contains "dot2", except "reduce" kernels, which sum partials) must contain
  v_dot2_f32_f16 / v_dot2acc_f32_f16 (gfx11 emits the VOP2 form) or v_dot2_f32_bf16;
- no kernel may use scratch (register spills, a stack) or more than 64 KiB of LDS;
- every kernel runs in wave32 (the WMMA builtins used are the wave32 ones).
Per innermost loop (isa_loops.py), what only real hardware would otherwise show as lost speed, on
gfx1100 alone (the arch the package selects at run time; the others are built, never chosen):
- an iteration's loads leave together: at least half of them are in flight at once, not each
  waited for before the next leaves;
- the main loop of a WMMA kernel (the loop with the most v_wmma) issues every v_wmma while global
  loads are in flight (the next K tile is fetched under the multiply: the LDS double buffering)
  and has no exec-mask branch (a divergent `if`, which also stops the compiler from moving the
  multiply above it); its global loads take a scalar base plus a 32-bit offset (saddr), not a
  64-bit VGPR address that costs VALU arithmetic at every K step;
- the main loop of a decode kernel keeps as many 16-byte weight loads in flight as the batch
  csrc/arch/decode_lanes.cuh declares (kLoadsInFlight).
VGPRs, SGPRs, LDS and scratch come from the code object metadata the compiler writes into the .s.
The command then compiles the ROCm build's hipified host sources for the first arch (hip_host.py).
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from w4a16_rdna3.hip_host import HipHostCheckError, check_hip_host
from w4a16_rdna3.isa_loops import LoopProfile, hot_loop, innermost_loops, loads_waited_alone

DEFAULT_ARCHES = ("gfx1100", "gfx1101", "gfx1102", "gfx1151")
WMMA_INSTRUCTIONS = ("v_wmma_f32_16x16x16_f16", "v_wmma_f32_16x16x16_bf16")
DOT2_INSTRUCTIONS = ("v_dot2_f32_f16", "v_dot2acc_f32_f16", "v_dot2_f32_bf16")
LDS_LIMIT_BYTES = 65536  # per workgroup on RDNA3
SPEED_CHECKED_ARCHES = frozenset({"gfx1100"})  # kernels.TARGET_ARCH: the loop checks apply there

# Waves per SIMD on gfx11, wave32 (LLVM AMDGPU: AMDGPU.td FeatureGFX11FullVGPRs; AMDGPUBaseInfo.cpp
# getTotalNumVGPRs, getVGPRAllocGranule, getMaxWavesPerEU). gfx1100/gfx1101 (Navi 31/32) and
# gfx1151 (Strix Halo) have a 192 KiB VGPR file per SIMD: 1536 wave32 VGPRs, allocated in granules
# of 24; the other gfx11 parts (gfx1102/gfx1103 Navi 33/Phoenix, gfx1150) have 128 KiB: 1024 VGPRs,
# granules of 16. A SIMD holds at most 16 waves. LDS is 128 KiB per WGP (two CUs, four SIMDs),
# shared by the workgroups resident on it. SGPRs do not limit waves on gfx10+.
FULL_VGPR_FILE_ARCHES = frozenset({"gfx1100", "gfx1101", "gfx1151"})
MAX_WAVES_PER_SIMD = 16
LDS_BYTES_PER_WGP = 131072
SIMDS_PER_WGP = 4
WAVE_SIZE = 32

CSRC = Path(__file__).resolve().parent.parent / "csrc"


@dataclass(frozen=True)
class KernelSource:
    """A header of kernel templates and the instantiations to compile from it.

    instances: C++ id-expressions, one per kernel instantiation (the set the launcher dispatches to).
    """

    header: str
    instances: tuple[str, ...]


def cpp_bools(count: int) -> tuple[tuple[str, ...], ...]:
    """Every combination of `count` C++ bool template arguments, false first."""
    return tuple(itertools.product(("false", "true"), repeat=count))


# The launchers' dispatch: the (bf16, zeros) flags, the decode row tiles (csrc/gemm_dot2.cu,
# launch_rows) and the WMMA tiles (csrc/gemm_wmma.cu, launch_variant).
FLAGS = cpp_bools(2)
DECODE_ROW_TILES = ("1", "2", "4", "8", "w4a16::dot2::kMaxRows")
WMMA_TILES = ("WmmaTileSmall", "WmmaTileMedium", "WmmaTileLarge")

# Mirrors the dispatch in csrc/gemm_dot2.cu (launch_flags/launch_rows) and csrc/gemm_wmma.cu
# (launch_variant over the three tiles), the K-split reduction both launch, and the act-order
# gather ops.cpp runs before either. The coverage check below fails when a header declares a
# kernel that is not listed here.
KERNEL_SOURCES = (
    KernelSource(
        "gemm_dot2_kernel.cuh",
        tuple(
            f"w4a16::dot2::gemm_dot2_kernel<{bf16}, {zeros}, {rows}, {warps}>"
            for bf16, zeros in FLAGS
            for rows in DECODE_ROW_TILES
            for warps in sorted({f"w4a16::dot2::Tile<{rows}>::kWarps", f"w4a16::dot2::Tile<{rows}>::kMinWarps"})
        ),
    ),
    KernelSource(
        "gemm_wmma_kernel.cuh",
        tuple(
            f"w4a16::gemm_wmma_kernel<w4a16::{tile}, {bf16}, {zeros}>"
            for tile in WMMA_TILES
            for bf16, zeros in FLAGS
        ),
    ),
    KernelSource(
        "gather_columns_kernel.cuh",
        tuple(f"w4a16::gather_columns_kernel<{bf16}>" for (bf16,) in cpp_bools(1)),
    ),
    KernelSource(
        "split_k_reduce_kernel.cuh",
        tuple(f"w4a16::split_k_reduce_kernel<{bf16}>" for (bf16,) in cpp_bools(1)),
    ),
)


class IsaCheckError(RuntimeError):
    """The check could not run or does not cover every kernel (toolchain, compile error, coverage)."""


@dataclass(frozen=True)
class Toolchain:
    clang: str
    demangler: str | None


@dataclass(frozen=True)
class KernelReport:
    arch: str
    kernel: str  # demangled, namespaces dropped
    kind: str  # "wmma", "dot2" or "other"
    instructions: dict[str, int]  # instructions of interest -> count
    vgprs: int
    sgprs: int
    lds_bytes: int
    scratch_bytes: int
    waves_per_simd: int
    llvm_occupancy: int | None  # the compiler's own "; Occupancy:" figure, for cross-checking
    main_loop: LoopProfile | None = None  # the innermost loop with the most v_wmma / dot2
    loads_alone: int = 0  # loads each waited for with no other in flight (isa_loops.loads_waited_alone)
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems


def kernel_kind(name: str) -> str:
    base = name.split("<", 1)[0]
    if "wmma" in base:
        return "wmma"
    if "dot2" in base:
        return "dot2"
    return "other"


def waves_per_simd(arch: str, vgprs: int, lds_bytes: int, workgroup_size: int) -> int:
    full = arch in FULL_VGPR_FILE_ARCHES
    total, granule = (1536, 24) if full else (1024, 16)
    allocated = -(-max(vgprs, 1) // granule) * granule
    waves = min(MAX_WAVES_PER_SIMD, total // allocated)
    if lds_bytes > 0:
        waves_per_group = -(-workgroup_size // WAVE_SIZE)
        groups_per_wgp = LDS_BYTES_PER_WGP // lds_bytes
        waves = min(waves, groups_per_wgp * waves_per_group // SIMDS_PER_WGP)
    return waves


def _clang_has_amdgpu(clang: str) -> bool:
    try:
        out = subprocess.run([clang, "--print-targets"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return "amdgcn" in out.stdout


def _hip_headers_found(clang: str) -> bool:
    rocm_clang = "/rocm" in clang or Path(clang).name.startswith(("amdclang", "hipcc"))
    return rocm_clang or any(
        Path(root, "hip/hip_runtime.h").exists() for root in ("/usr/include", "/opt/rocm/include")
    )


def find_toolchain() -> tuple[Toolchain | None, str]:
    """A clang with the AMDGPU target and HIP headers, or None and the reason."""
    candidates = [os.environ.get("W4A16_RDNA3_CLANG"), "/opt/rocm/llvm/bin/clang++", "amdclang++"]
    candidates += [f"clang++-{v}" for v in range(21, 18, -1)] + ["clang++", "hipcc"]
    for candidate in filter(None, candidates):
        clang = shutil.which(candidate) or (candidate if Path(candidate).is_file() else None)
        if clang and _clang_has_amdgpu(clang):
            if not _hip_headers_found(clang):
                return None, f"{clang} has the AMDGPU target but no HIP headers were found (apt-get install libamdhip64-dev)"
            suffix = re.search(r"-(\d+)$", Path(clang).name)
            demanglers = [str(Path(clang).parent / "llvm-cxxfilt")]
            demanglers += [f"llvm-cxxfilt-{suffix[1]}"] if suffix else []
            demanglers += ["llvm-cxxfilt", "c++filt"]
            demangler = next((shutil.which(d) for d in demanglers if shutil.which(d)), None)
            return Toolchain(clang, demangler), ""
    return None, "no clang with the AMDGPU target found (apt-get install clang-19 lld-19 libamdhip64-dev, or ROCm)"


def translation_unit(source: KernelSource) -> str:
    # Taking a kernel's address in host code makes the device compilation emit that
    # instantiation, without spelling out its parameter list as an explicit instantiation would.
    refs = "\n".join(f"    reinterpret_cast<const void*>(&{inst})," for inst in source.instances)
    return (
        "// Generated by w4a16_rdna3.isa: every kernel instantiation checked from this header.\n"
        f'#include "{source.header}"\n\n'
        "namespace {\n"
        "[[maybe_unused]] const void* const kIsaKernels[] = {\n"
        f"{refs}\n"
        "};\n"
        "}  // namespace\n"
    )


def compile_to_asm(
    toolchain: Toolchain, tu: Path, include_dir: Path, arch: str, out: Path, extra_flags: tuple[str, ...] = ()
) -> str:
    """Device code of `tu` for `arch` as text: the assembly, or what `extra_flags` ask for instead
    (`-emit-llvm`: LLVM IR)."""
    cmd = [
        toolchain.clang, "-x", "hip", "--cuda-device-only", f"--offload-arch={arch}", "-nogpulib",
        "-O3", "-S", "-std=c++17", *extra_flags, "-I", str(include_dir), "-o", str(out), str(tu),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise IsaCheckError(f"compiling {tu.name} for {arch} failed:\n{' '.join(cmd)}\n{result.stderr}")
    return out.read_text()


_METADATA_KEYS = {
    ".name": str,
    ".vgpr_count": int,
    ".sgpr_count": int,
    ".group_segment_fixed_size": int,
    ".private_segment_fixed_size": int,
    ".wavefront_size": int,
    ".max_flat_workgroup_size": int,
    ".uses_dynamic_stack": str,
}


def parse_metadata(asm: str) -> list[dict[str, int | str]]:
    """Per kernel: the top-level keys of its entry in the amdhsa.kernels YAML metadata."""
    block = re.search(r"^\s*\.amdgpu_metadata\n(.*?)^\s*\.end_amdgpu_metadata", asm, re.S | re.M)
    if block is None:
        raise IsaCheckError("no .amdgpu_metadata block in the assembly")
    kernels: list[dict[str, int | str]] = []
    for line in block[1].splitlines():
        if re.match(r"^  - ", line):  # a new entry of amdhsa.kernels
            kernels.append({})
            line = "    " + line[4:]
        entry = re.match(r"^    (\.\w+):\s+(\S+)", line)  # kernel-level keys sit at 4 spaces
        if entry and kernels and entry[1] in _METADATA_KEYS:
            kernels[-1][entry[1]] = _METADATA_KEYS[entry[1]](entry[2])
    return [k for k in kernels if ".name" in k]


def function_body(asm: str, symbol: str) -> str:
    """The instructions of one function: from its label to the next .Lfunc_end label."""
    match = re.search(rf"^{re.escape(symbol)}:.*?\n(.*?)^\.Lfunc_end\d+:", asm, re.S | re.M)
    return match[1] if match else ""


def llvm_occupancy(asm: str, symbol: str) -> int | None:
    """The "; Occupancy: N" figure the compiler prints after the function, for cross-checking."""
    match = re.search(rf"^{re.escape(symbol)}:.*?^; Occupancy: (\d+)", asm, re.S | re.M)
    return int(match[1]) if match else None


def count_instructions(body: str, names: tuple[str, ...]) -> dict[str, int]:
    counts = dict.fromkeys(names, 0)
    for match in re.finditer(r"^\s+(v_[a-z0-9_]+?)(?:_e32|_e64|_dpp|_sdwa)?\s", body, re.M):
        if match[1] in counts:
            counts[match[1]] += 1
    return {name: n for name, n in counts.items() if n}


def demangle(names: list[str], demangler: str | None) -> dict[str, str]:
    if not demangler or not names:
        return {n: n for n in names}
    out = subprocess.run([demangler], input="\n".join(names) + "\n", capture_output=True, text=True)
    lines = out.stdout.splitlines()
    return dict(zip(names, lines)) if out.returncode == 0 and len(lines) == len(names) else {n: n for n in names}


def short_name(demangled: str) -> str:
    """`void w4a16::dot2::f<true, 1>(w4a16::dot2::Args)` -> `f<true, 1>`."""
    name = re.sub(r"^void\s+", "", demangled)
    depth, end = 0, len(name)
    for i, ch in enumerate(name):  # cut the parameter list: the first "(" outside template brackets
        depth += ch == "<"
        depth -= ch == ">"
        if ch == "(" and depth == 0:
            end = i
            break
    return re.sub(r"\b\w+::", "", name[:end])


def decode_loads_in_flight(csrc: Path) -> int:
    """The decode batch of 16-byte loads per lane on gfx11: kLoadsInFlight in arch/decode_lanes.cuh
    (of `csrc`, or of the checkout's csrc/ when `csrc` has none, as the test fixtures do not)."""
    header = next(p for p in (csrc / "arch/decode_lanes.cuh", CSRC / "arch/decode_lanes.cuh") if p.exists())
    match = re.search(r"kLoadsInFlight\s*=\s*(\d+)\s*;", header.read_text())
    if match is None:
        raise IsaCheckError(f"no kLoadsInFlight = N; in {header}")
    return int(match[1])


def loop_problems(kind: str, loops: list[LoopProfile], main: LoopProfile | None, decode_batch: int) -> list[str]:
    problems = [
        f"loop {loop.header}: at most {loop.max_in_flight} of its {loop.loads} loads in flight (each waited for "
        "before the next leaves)"
        for loop in loops
        if not loop.loads_leave_together
    ]
    if main is None:
        if kind in ("wmma", "dot2"):
            problems.append(f"no loop holds the {kind} instructions")
    elif kind == "wmma":
        if main.matrix_under_loads < main.matrix:
            problems.append(f"main loop {main.header}: {main.matrix - main.matrix_under_loads} of {main.matrix} v_wmma "
                            "issued with no global load in flight (the next K tile is not fetched under the multiply)")
        if main.exec_branches:
            problems.append(f"main loop {main.header}: {main.exec_branches} exec-mask branch instructions")
        if main.vector_addressed_loads:
            problems.append(f"main loop {main.header}: {main.vector_addressed_loads} of its {main.loads} loads "
                            "addressed by a 64-bit VGPR pair (64-bit VALU per load; a scalar base and a 32-bit "
                            "offset need none: arch::LaneAddress)")
    elif kind == "dot2" and main.max_16b_in_flight < decode_batch:
        problems.append(f"main loop {main.header}: {main.max_16b_in_flight} 16-byte loads in flight, the batch is "
                        f"{decode_batch}")
    return problems


def analyse(arch: str, asm: str, demangler: str | None, decode_batch: int) -> list[KernelReport]:
    metadata = parse_metadata(asm)
    names = demangle([str(k[".name"]) for k in metadata], demangler)
    reports = []
    for meta in metadata:
        mangled = str(meta[".name"])
        kernel = short_name(names[mangled])
        kind = kernel_kind(kernel)
        body = function_body(asm, mangled)
        wanted = {"wmma": WMMA_INSTRUCTIONS, "dot2": DOT2_INSTRUCTIONS}.get(kind, ())
        found = count_instructions(body, WMMA_INSTRUCTIONS + DOT2_INSTRUCTIONS)
        vgprs, lds = int(meta.get(".vgpr_count", 0)), int(meta.get(".group_segment_fixed_size", 0))
        scratch = int(meta.get(".private_segment_fixed_size", 0))
        problems = []
        if wanted and not any(name in found for name in wanted):
            problems.append(f"{kind} kernel without {' / '.join(wanted)}")
        if scratch > 0 or meta.get(".uses_dynamic_stack") == "true":
            problems.append(f"uses scratch ({scratch} bytes): spills or a stack")
        if lds > LDS_LIMIT_BYTES:
            problems.append(f"LDS {lds} bytes > {LDS_LIMIT_BYTES}")
        if int(meta.get(".wavefront_size", WAVE_SIZE)) != WAVE_SIZE:
            problems.append(f"wave{meta['.wavefront_size']}, expected wave32")
        loops = innermost_loops(body)
        main = hot_loop(loops)
        if arch in SPEED_CHECKED_ARCHES:
            problems += loop_problems(kind, loops, main, decode_batch)
        workgroup = int(meta.get(".max_flat_workgroup_size", 1024))
        reports.append(
            KernelReport(
                arch=arch, kernel=kernel, kind=kind, instructions=found, vgprs=vgprs,
                sgprs=int(meta.get(".sgpr_count", 0)), lds_bytes=lds, scratch_bytes=scratch,
                waves_per_simd=waves_per_simd(arch, vgprs, lds, workgroup),
                llvm_occupancy=llvm_occupancy(asm, mangled), main_loop=main,
                loads_alone=loads_waited_alone(body), problems=tuple(problems),
            )
        )
    return reports


def declared_kernels(csrc: Path) -> dict[str, Path]:
    """Kernel name -> file, for every __global__ function defined under csrc/."""
    found = {}
    pattern = re.compile(r"__global__\s+(?:void\s+)?(?:__launch_bounds__\s*\([^)]*\)\s*)?(?:void\s+)?(\w+)\s*\(")
    for path in sorted(csrc.rglob("*")):
        if path.suffix in (".cu", ".cuh", ".h", ".hip", ".cpp"):
            for match in pattern.finditer(path.read_text(errors="replace")):
                found[match[1]] = path
    return found


def check_coverage(csrc: Path, sources: tuple[KernelSource, ...]) -> None:
    listed = {re.sub(r"<.*", "", inst).split("::")[-1] for s in sources for inst in s.instances}
    problems = []
    for name, path in declared_kernels(csrc).items():
        if path.suffix not in (".cuh", ".h"):
            problems.append(f"{name} is defined in {path.name}: kernels must live in a *_kernel.cuh header "
                            "(pure device code) so that the ISA check can compile them without torch")
        elif name not in listed:
            problems.append(f"{name} ({path.name}) is not instantiated by the ISA check: "
                            "add it to KERNEL_SOURCES in w4a16_rdna3/isa.py")
    if problems:
        raise IsaCheckError("\n".join(problems))


def check_isa(
    arches: list[str] | tuple[str, ...] = DEFAULT_ARCHES,
    keep_dir: str | Path | None = None,
    *,
    csrc: str | Path | None = None,
    sources: tuple[KernelSource, ...] | None = None,
    toolchain: Toolchain | None = None,
) -> list[KernelReport]:
    """Compile `sources` (default: every kernel header of csrc/) for each arch and check each kernel.

    Raises IsaCheckError when no toolchain is found, a compile fails, or (default sources) a
    kernel in csrc/ is not covered; kernel-level failures are in the reports' `problems`.
    """
    csrc = Path(csrc) if csrc else CSRC
    if not csrc.is_dir():
        raise IsaCheckError(f"{csrc} not found: run from a source checkout of w4a16_rdna3 (csrc/ is not installed)")
    if sources is None:
        sources = KERNEL_SOURCES
        check_coverage(csrc, sources)
    if toolchain is None:
        toolchain, reason = find_toolchain()
        if toolchain is None:
            raise IsaCheckError(reason)
    decode_batch = decode_loads_in_flight(csrc)
    with tempfile.TemporaryDirectory(prefix="w4a16_isa_") as tmp:
        work = Path(keep_dir) if keep_dir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        jobs = []
        for source in sources:
            tu = work / (Path(source.header).stem + ".hip")
            tu.write_text(translation_unit(source))
            jobs += [(arch, tu, work / f"{tu.stem}.{arch}.s") for arch in arches]
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            asms = list(pool.map(lambda job: compile_to_asm(toolchain, job[1], csrc, job[0], job[2]), jobs))
        reports = []
        for (arch, _, _), asm in zip(jobs, asms):
            reports += analyse(arch, asm, toolchain.demangler, decode_batch)
    return reports


def format_table(reports: list[KernelReport]) -> str:
    header = ("arch", "kernel", "instructions of interest", "VGPR", "SGPR", "LDS B", "scratch B", "waves/SIMD",
              "loop VALU", "loads in flight", "result")
    rows = [header]
    for r in reports:
        found = ", ".join(f"{name} x{n}" for name, n in r.instructions.items()) or "-"
        loop = r.main_loop
        rows.append((r.arch, r.kernel, found, str(r.vgprs), str(r.sgprs), str(r.lds_bytes), str(r.scratch_bytes),
                     str(r.waves_per_simd), str(loop.valu) if loop else "-",
                     f"{loop.max_in_flight}/{loop.loads}" if loop else "-",
                     "ok" if r.ok else "FAIL: " + "; ".join(r.problems)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def isa_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="w4a16-rdna3 isa",
        description="Compile the kernels for RDNA3 with clang (no GPU needed) and check their ISA: "
        "WMMA kernels use v_wmma, decode kernels use dot2, no scratch, LDS <= 64 KiB, loops keep their "
        "loads in flight; then compile the ROCm build's hipified host sources for the first arch.",
    )
    parser.add_argument("--arch", action="append", metavar="GFX",
                        help=f"arch to compile for (repeatable or comma-separated; default: {','.join(DEFAULT_ARCHES)})")
    parser.add_argument("--keep", metavar="DIR", help="keep the generated sources and .s files in DIR")
    parser.add_argument("--csrc", metavar="DIR", help="kernel sources (default: the checkout's csrc/)")
    args = parser.parse_args(argv)
    arches = [a for spec in args.arch or [",".join(DEFAULT_ARCHES)] for a in spec.split(",") if a]
    if not arches:
        parser.error("--arch names no arch")
    toolchain, reason = find_toolchain()
    if toolchain is None:
        print(f"isa check failed: {reason}", file=sys.stderr)
        return 1
    try:
        reports = check_isa(arches, args.keep, csrc=args.csrc, toolchain=toolchain)
    except IsaCheckError as error:
        print(f"isa check failed: {error}", file=sys.stderr)
        return 1
    print(format_table(reports))
    failed = [r for r in reports if not r.ok]
    print(f"\n{len(reports)} kernel instantiations on {', '.join(arches)}: "
          + (f"{len(failed)} FAILED" if failed else "all passed"))
    # The host code is the same for every arch: one compile checks it.
    try:
        sources = check_hip_host(toolchain.clang, args.csrc or CSRC, arches[0], keep_dir=args.keep)
    except HipHostCheckError as error:
        print(f"host code (the ROCm build's hipified sources) on {arches[0]}: FAILED\n{error}")
        return 1
    print(f"host code (the ROCm build's hipified sources, against ROCm PyTorch's headers): "
          f"{len(sources)} sources compiled for {arches[0]}: {', '.join(sources)}")
    return 1 if failed else 0
