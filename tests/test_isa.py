"""The gfx11 ISA check (w4a16_rdna3.isa, its loop checks in isa_loops) and the host-code check of
the ROCm build's hipified sources (w4a16_rdna3.hip_host): they pass on our code and fail on wrong
code.

The compile tests need a clang with the AMDGPU target and HIP headers (CI installs them with
.ci/install-hip-toolchain.sh); without them they skip, saying so. The coverage and arithmetic
tests need no compiler.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from w4a16_rdna3 import hip_host, isa, kernels

FIXTURES = Path(__file__).resolve().parent / "isa_fixtures"
WRONG_SOURCES = (
    isa.KernelSource("wrong_kernels.cuh", ("gemm_wmma_fp32_fixture_kernel", "gemm_dot2_scratch_fixture_kernel")),
)
SLOW_LOOP_SOURCES = (
    isa.KernelSource(
        "slow_loops.cuh",
        (
            "gemm_wmma_unbuffered_fixture_kernel",
            "gemm_wmma_lane_pointer_fixture_kernel",
            "gemm_dot2_one_load_fixture_kernel",
            "serial_gather_fixture_kernel",
        ),
    ),
)

TOOLCHAIN, NO_TOOLCHAIN_REASON = isa.find_toolchain()
requires_toolchain = pytest.mark.skipif(
    TOOLCHAIN is None, reason=f"gfx11 ISA check skipped: {NO_TOOLCHAIN_REASON}"
)


@pytest.fixture(scope="module")
def gfx1100_reports() -> list[isa.KernelReport]:
    return isa.check_isa(["gfx1100"], toolchain=TOOLCHAIN)


@requires_toolchain
def test_every_kernel_passes_on_gfx1100(gfx1100_reports: list[isa.KernelReport]) -> None:
    failed = [r for r in gfx1100_reports if not r.ok]
    assert not failed, isa.format_table(failed)


@requires_toolchain
def test_the_four_instructions_appear_on_gfx1100(gfx1100_reports: list[isa.KernelReport]) -> None:
    found = {name for r in gfx1100_reports for name in r.instructions}
    assert {"v_wmma_f32_16x16x16_f16", "v_wmma_f32_16x16x16_bf16", "v_dot2_f32_bf16"} <= found
    assert found & {"v_dot2_f32_f16", "v_dot2acc_f32_f16"}, "no fp16 dot2 in any decode kernel"


@requires_toolchain
def test_each_kernel_family_uses_its_instruction(gfx1100_reports: list[isa.KernelReport]) -> None:
    kinds = {r.kind for r in gfx1100_reports}
    assert {"wmma", "dot2"} <= kinds, f"expected WMMA and decode kernels, found kinds {kinds}"
    for r in gfx1100_reports:
        if r.kind == "wmma":
            assert any(name.startswith("v_wmma_") for name in r.instructions), r.kernel
        if r.kind == "dot2":
            assert any(name.startswith("v_dot2") for name in r.instructions), r.kernel


@requires_toolchain
def test_the_wmma_epilogue_loads_its_bias_once_per_fragment_column(gfx1100_reports: list[isa.KernelReport]) -> None:
    # Each gfx11 WMMA tile gives a wave two 16-column fragment columns; a lane's 8 accumulators of
    # one share a column, so its bias is one load, waited for at the epilogue. Predicated per
    # accumulator it was 16 such loads.
    for r in gfx1100_reports:
        if r.kind == "wmma":
            assert r.loads_alone <= 2, (r.kernel, r.loads_alone)


FRAGMENT_LOADS_TU = """
#include "arch/arch.cuh"
using namespace w4a16::arch;
__global__ void fragment_loads(const uint4* in, float* out, int ld) {
  __shared__ uint4 lds[1024];
  for (int i = thread_id(); i < 1024; i += 32) lds[i] = in[i];
  barrier();
  WmmaFragA a;
  WmmaFragB b;
  WmmaAcc c;
  wmma_zero(c);
  const uint16_t* tile = reinterpret_cast<const uint16_t*>(lds);
  wmma_load_a(a, tile, ld, lane_id());
  wmma_load_b(b, tile + 640, ld, lane_id());
  wmma_mma<false>(c, a, b);
  for (int i = 0; i < 8; ++i) out[i * 32 + lane_id()] = c.v[i];
}
"""


@requires_toolchain
def test_wmma_fragment_loads_promise_no_more_than_16_byte_alignment(tmp_path: Path) -> None:
    # A fragment is the 32 bytes of one LDS row, and rows are 16-byte aligned only (pitch a multiple
    # of 8 elements: 40 puts every odd row at 16 mod 32). A load through a plain 32-byte vector type
    # told LLVM `align 32`, which any lowering could rely on; clang 19 happened to split it into two
    # 16-byte reads.
    tu = tmp_path / "fragment_loads.hip"
    tu.write_text(FRAGMENT_LOADS_TU)
    ir = tmp_path / "fragment_loads.ll"
    isa.compile_to_asm(TOOLCHAIN, tu, isa.CSRC, "gfx1100", ir, extra_flags=("-emit-llvm",))
    loads = re.findall(r"load <16 x (?:half|i16)>, ptr addrspace\(3\) %\w+, align (\d+)", ir.read_text())
    assert len(loads) == 2, f"expected the two fragment loads from LDS in the IR, found {loads}"
    assert all(int(align) <= 16 for align in loads), f"fragment loads claim alignments {loads}"


@requires_toolchain
def test_waves_per_simd_agree_with_the_compiler(gfx1100_reports: list[isa.KernelReport]) -> None:
    compared = [r for r in gfx1100_reports if r.llvm_occupancy is not None]
    assert compared, "the compiler printed no '; Occupancy:' figure to compare with"
    for r in compared:
        assert r.waves_per_simd == r.llvm_occupancy, (r.kernel, r.waves_per_simd, r.llvm_occupancy)


@requires_toolchain
@pytest.mark.parametrize("arch", ["gfx1101", "gfx1102", "gfx1151"])
def test_wrong_kernels_fail_on_every_arch(arch: str) -> None:
    reports = isa.check_isa([arch], csrc=FIXTURES, sources=WRONG_SOURCES, toolchain=TOOLCHAIN)
    problems = {r.kernel: r.problems for r in reports}
    assert set(problems) == {"gemm_wmma_fp32_fixture_kernel", "gemm_dot2_scratch_fixture_kernel"}
    assert any("wmma kernel without" in p for p in problems["gemm_wmma_fp32_fixture_kernel"])
    assert any("uses scratch" in p for p in problems["gemm_dot2_scratch_fixture_kernel"])
    assert any("dot2 kernel without" in p for p in problems["gemm_dot2_scratch_fixture_kernel"])


@requires_toolchain
def test_slow_loops_fail() -> None:
    reports = isa.check_isa(["gfx1100"], csrc=FIXTURES, sources=SLOW_LOOP_SOURCES, toolchain=TOOLCHAIN)
    problems = {r.kernel: " ".join(r.problems) for r in reports}
    assert "with no global load in flight" in problems["gemm_wmma_unbuffered_fixture_kernel"]
    assert "exec-mask branch" in problems["gemm_wmma_unbuffered_fixture_kernel"]
    assert "addressed by a 64-bit VGPR pair" in problems["gemm_wmma_lane_pointer_fixture_kernel"]
    batch = isa.decode_loads_in_flight(isa.CSRC)
    assert f"1 16-byte loads in flight, the batch is {batch}" in problems["gemm_dot2_one_load_fixture_kernel"]
    assert "each waited for before the next leaves" in problems["serial_gather_fixture_kernel"]


def test_the_decode_batch_is_read_from_the_arch_header() -> None:
    assert isa.decode_loads_in_flight(isa.CSRC) == 4


def test_the_loop_checks_apply_to_the_arch_the_kernels_take() -> None:
    assert isa.SPEED_CHECKED_ARCHES == {kernels.TARGET_ARCH}


@requires_toolchain
def test_command_exits_non_zero_on_a_wrong_kernel(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(isa, "KERNEL_SOURCES", WRONG_SOURCES + SLOW_LOOP_SOURCES)
    status = isa.isa_main(["--arch", "gfx1100", "--csrc", str(FIXTURES)])
    out = capsys.readouterr().out
    assert status != 0
    assert "FAIL: wmma kernel without" in out and "6 FAILED" in out


@requires_toolchain
def test_command_passes_and_keeps_files(tmp_path: Path, capsys) -> None:
    """The ISA check and the host check of the ROCm build's hipified sources, one run of each."""
    status = isa.isa_main(["--arch", "gfx1100", "--keep", str(tmp_path)])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "all passed" in out
    assert sorted(p.name for p in tmp_path.glob("*.s")) == [
        f"{Path(s.header).stem}.gfx1100.s" for s in sorted(isa.KERNEL_SOURCES, key=lambda s: s.header)
    ]
    # Every source the ROCm build compiles: each .cu as its .hip translation, each .cpp that names
    # CUDA as its _hip.cpp one.
    compiled_line = next(line for line in out.splitlines() if "sources compiled for gfx1100: " in line)
    compiled = compiled_line.split("sources compiled for gfx1100: ")[1].split(", ")
    expected = {f"{path.stem}.hip" for path in isa.CSRC.glob("*.cu")} | {"ops_hip.cpp", "build_info.cpp"}
    assert set(compiled) == expected and len(compiled) == len(expected)
    hipified = tmp_path / "hip_host"
    plan = (hipified / "gemm_dot2_plan_hip.h").read_text()
    assert "hipOccupancyMaxActiveBlocksPerMultiprocessor" in plan and "cudaGetLastError" not in plan
    assert "ATen/hip/HIPContext.h" in (hipified / "ops_hip.cpp").read_text()


@requires_toolchain
@pytest.mark.parametrize(
    ("fixture", "error"),
    [
        ("hip_lacks", "cudaOccupancyMaxActiveClusters"),
        ("hipify_breaks", "no matching function for call to 'max'"),
    ],
)
def test_hip_host_check_fails_on_wrong_host_code(fixture: str, error: str) -> None:
    with pytest.raises(hip_host.HipHostCheckError, match=error):
        hip_host.check_hip_host(TOOLCHAIN.clang, FIXTURES / "wrong_host" / fixture, "gfx1100")


def test_command_refuses_an_empty_arch_list(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        isa.isa_main(["--arch", ","])
    assert exit_info.value.code == 2
    assert "--arch names no arch" in capsys.readouterr().err


def test_a_kernel_in_a_launcher_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "gemm_new.cu").write_text("__global__ void gemm_new_kernel(float* x) { x[0] = 1.0f; }\n")
    with pytest.raises(isa.IsaCheckError, match="gemm_new_kernel is defined in gemm_new.cu"):
        isa.check_coverage(tmp_path, isa.KERNEL_SOURCES)


def test_a_kernel_missing_from_the_instance_table_is_reported(tmp_path: Path) -> None:
    (tmp_path / "gemm_new_kernel.cuh").write_text(
        "template <int N>\n__global__ void __launch_bounds__(256)\n    gemm_new_kernel(float* x) {}\n"
    )
    with pytest.raises(isa.IsaCheckError, match="gemm_new_kernel .* is not instantiated"):
        isa.check_coverage(tmp_path, isa.KERNEL_SOURCES)


def test_every_kernel_of_csrc_is_covered() -> None:
    isa.check_coverage(isa.CSRC, isa.KERNEL_SOURCES)


@pytest.mark.parametrize(
    ("arch", "vgprs", "lds", "threads", "waves"),
    [
        ("gfx1100", 96, 0, 256, 16),  # 96 = 4 granules of 24: 1536 / 96 = 16
        ("gfx1100", 97, 0, 256, 12),  # rounds up to 120: 1536 / 120 = 12.8
        ("gfx1100", 158, 0, 256, 9),  # 168: 9.1
        ("gfx1151", 158, 0, 256, 9),  # same 192 KiB VGPR file as gfx1100
        ("gfx1102", 158, 0, 256, 6),  # 160 of 1024: 6.4
        ("gfx1102", 68, 0, 256, 12),  # 80 of 1024: 12.8
        ("gfx1100", 32, 20480, 256, 12),  # LDS: 6 groups of 8 waves on a WGP of 4 SIMDs
        ("gfx1100", 32, 65536, 128, 2),  # LDS: 2 groups of 4 waves on 4 SIMDs
    ],
)
def test_waves_per_simd(arch: str, vgprs: int, lds: int, threads: int, waves: int) -> None:
    assert isa.waves_per_simd(arch, vgprs, lds, threads) == waves


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("gemm_wmma_kernel<WmmaTile<32, 64, 32, 2, 2, 1>, true, false>", "wmma"),
        ("gemm_dot2_kernel<true, true, 16, 8>", "dot2"),
        ("split_k_reduce_kernel<true>", "other"),
        ("copy_kernel<WmmaTile<1>>", "other"),
    ],
)
def test_kernel_kind_reads_the_kernel_name_only(name: str, kind: str) -> None:
    assert isa.kernel_kind(name) == kind


def test_short_name_drops_return_type_namespaces_and_parameters() -> None:
    demangled = "void w4a16::gemm_wmma_kernel<w4a16::WmmaTile<32, 64, 32, 2, 2, 1>, true, false>(w4a16::WmmaGemmArgs)"
    assert isa.short_name(demangled) == "gemm_wmma_kernel<WmmaTile<32, 64, 32, 2, 2, 1>, true, false>"
