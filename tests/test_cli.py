"""The command line: info's content, check's verdicts, and the bare command's order."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from w4a16_rdna3 import __main__ as cli
from w4a16_rdna3 import _ops, cli_check, cli_info
from w4a16_rdna3.reference import gemm_reference


def test_info_names_platform_build_and_every_refusal(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"torch           {torch.__version__}" in out
    assert "GPU arch" in out
    for dtype in ("float16", "bfloat16"):
        assert f"G=128 {dtype} GPTQ layer:" in out
    if torch.version.hip is None:
        # Off ROCm the native kernel must be refused, and the reason must say so.
        assert "RDNA3W4A16LinearKernel refused: " in out
        assert "not a ROCm build" in out


def test_info_under_mocked_gfx1100_without_extension_names_the_missing_build(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("W4A16_RDNA3_ARCH", "gfx1100")
    # Also on a gfx1100 machine whose _C is built: the missing build is stood in for here.
    monkeypatch.setattr(_ops, "native_build_info", lambda: None)
    monkeypatch.setattr(_ops, "native_unavailable_reason", lambda: "module w4a16_rdna3._C is not installed")
    from w4a16_rdna3 import platform
    platform.cache_clear()
    try:
        lines = "\n".join(cli_info.info_lines())
    finally:
        monkeypatch.delenv("W4A16_RDNA3_ARCH")
        platform.cache_clear()
    assert "GPU arch        gfx1100" in lines
    assert "RDNA3W4A16LinearKernel refused" in lines
    if torch.version.hip is not None:
        assert "module w4a16_rdna3._C is not installed" in lines


def test_info_build_line_says_which_group_sizes_decode_takes(monkeypatch: pytest.MonkeyPatch) -> None:
    build = {"backend": "cuda", "arches": ["sm_90a"], "emulation": False, "decode_group_multiple": 32}
    monkeypatch.setattr(_ops, "native_build_info", lambda: dict(build))
    lines = cli_info.info_lines()
    native = next(line for line in lines if line.startswith("native kernels"))
    assert native.endswith("built: backend cuda, arches sm_90a; decode kernel for group sizes that are multiples "
                           "of 32 or K (others: WMMA)")


def test_info_lists_every_gpu_torch_sees(monkeypatch: pytest.MonkeyPatch) -> None:
    cards = [SimpleNamespace(name="Radeon RX 7900 XTX", gcnArchName="gfx1100", major=11, minor=0,
                             multi_processor_count=48),
             SimpleNamespace(name="Radeon PRO W7900", gcnArchName="gfx1100", major=11, minor=0,
                             multi_processor_count=48),
             SimpleNamespace(name="AMD Radeon Graphics", gcnArchName="gfx1036", major=10, minor=3,
                             multi_processor_count=1)]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(cards))
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: cards[index])
    monkeypatch.setattr(cli_info.kernels, "choose_kernel", lambda config: SimpleNamespace(kernel=None, refusals={}))
    lines = cli_info.info_lines()
    first = lines.index("GPU (torch)     0: Radeon RX 7900 XTX (gfx1100, 48 WGPs (96 CUs))")
    assert lines[first + 1:first + 3] == ["                1: Radeon PRO W7900 (gfx1100, 48 WGPs (96 CUs))",
                                          "                2: AMD Radeon Graphics (gfx1036, 1 WGPs (2 CUs))"]
    assert lines[first + 3].startswith("GPU arch")


@pytest.mark.parametrize(("arch", "expected"), [
    ("sm_90", "132 SMs"),
    ("gfx1100", "48 WGPs (96 CUs)"),
    ("gfx1030:sramecc-:xnack-", "48 WGPs (96 CUs)"),
    ("gfx942:sramecc+:xnack-", "48 CUs"),
    ("gfx803", "48 CUs"),
])
def test_info_names_what_the_multiprocessor_count_counts(arch: str, expected: str) -> None:
    count = 132 if arch.startswith("sm_") else 48
    assert cli_info.multiprocessors(count, arch) == expected


SMALL = cli_check.Case("triton", torch.float16, m=3, k=256, n=64, group_size=128, symmetric=False, act_order=True)


def _use_cases(monkeypatch: pytest.MonkeyPatch, cases: list[cli_check.Case]) -> None:
    monkeypatch.setattr(cli_check, "cases", lambda device, quick: cases)


def test_check_passes_an_exact_backend(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _use_cases(monkeypatch, [SMALL])
    monkeypatch.setattr(_ops, "gemm", lambda *args, backend: gemm_reference(*args))
    assert cli_check.run_check() == 0
    assert "1 passed, 0 failed" in capsys.readouterr().out


@pytest.mark.parametrize("corrupt", [
    pytest.param(lambda out: out * 1.01, id="1%-off"),
    pytest.param(lambda out: out.index_fill(1, torch.tensor([5], device=out.device), float("nan")), id="one-NaN-column"),
    pytest.param(lambda out: torch.zeros_like(out), id="unwritten"),
])
def test_check_fails_a_wrong_backend(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                     corrupt) -> None:
    _use_cases(monkeypatch, [SMALL, SMALL._replace(dtype=torch.bfloat16)])
    monkeypatch.setattr(_ops, "gemm", lambda *args, backend: corrupt(gemm_reference(*args)))
    assert cli_check.run_check() == 1
    out = capsys.readouterr().out
    assert "FAIL" in out
    assert "0 passed, 2 failed" in out


def test_check_without_any_path_is_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    _use_cases(monkeypatch, [])
    assert cli_check.run_check() == 1


def test_check_runs_the_triton_kernel_for_real_on_this_machine() -> None:
    device = cli_check.default_device()
    if "triton" not in cli_check.available_backends(device):
        pytest.skip("Triton cannot run here (not installed, or imported before TRITON_INTERPRET could be set)")
    outcome = cli_check.run_case(SMALL, device, seed=7)
    assert outcome.passed, outcome


def test_bare_command_runs_info_then_check(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(cli_info, "print_info", lambda: calls.append("info") or 0)
    monkeypatch.setattr(cli_check, "run_check", lambda quick: calls.append("check") or 1)
    assert cli.main([]) == 1
    assert calls == ["info", "check"]


def test_bench_without_gpu_says_so_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: bench would run for real (benchmarks are not tests)")
    assert cli.main(["bench", "--quick"]) == 1
    assert "no GPU visible" in capsys.readouterr().err
