"""w4a16_rdna3 inside the real vLLM (run by tests/vllm/run.sh, which installs the pinned vLLM).

Each GPU is one process of scenario.py (vLLM resolves its platform and gfx arch once per
process); see there for what is mocked and why. Skipped where vLLM is not installed.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import vllm.platforms  # noqa: F401 - a bare tests/vllm directory imports as `vllm` but has no platforms
except ImportError:
    pytest.skip("vLLM is not installed here: run tests/vllm/run.sh", allow_module_level=True)

HERE = Path(__file__).parent
OURS = "w4a16_rdna3.kernels.RDNA3W4A16LinearKernel"


def _scenario(target: str, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp(target) / "report.json"
    env = dict(os.environ)
    env["FAKE_AMDSMI_ARCH"] = "gfx942" if target == "cuda" else target
    env.pop("W4A16_RDNA3_ARCH", None)  # the arch must come from (the stand-in) amdsmi, as vLLM's does
    env["PYTHONPATH"] = os.pathsep.join([str(HERE / "fake_gpu"), str(HERE), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, str(HERE / "scenario.py"), target, str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module", params=["gfx1100", "gfx1151", "gfx942", "cuda"])
def report(request, tmp_path_factory) -> dict:
    return _scenario(request.param, tmp_path_factory)


def test_vllm_plugin_loader_finds_our_entry_point(report):
    assert report["entry_points"]["w4a16_rdna3"] == "w4a16_rdna3.vllm_plugin.register"
    assert report["ours_is_register"]


def test_compiled_graphs_are_keyed_by_whether_ours_runs(report):
    # vLLM reuses compiled graphs across restarts by a key of its config and environment getters;
    # ours must be among them on ROCm, so that a graph calling vLLM's own kernel is not reused once
    # ours takes the layers (their weight layouts differ).
    if not report["compile_factors_known"]:
        pytest.skip(f"vLLM {report['vllm_version']} has no envs.compile_factors")
    key = report["compile_key"]
    if report["target"] == "cuda":
        assert key is None
    else:
        assert key.startswith("w4a16_rdna3 ")
        assert key.endswith("native kernel on" if report["target"] == "gfx1100" else "native kernel off")


def test_rocm_list_has_ours_first_once_and_nothing_else_changes(report):
    before, after = report["lists_before"], report["lists_after"]
    if report["target"] == "cuda":
        assert report["platform"] == "StandInCudaPlatform"
        assert after == before
        assert "not ROCm" in report["plugin_log"][0]
        return
    assert report["platform"] == "RocmPlatform"
    rocm = "PlatformEnum.ROCM" if "PlatformEnum.ROCM" in after else "all platforms"  # one list before 0.33.0
    assert after[rocm] == [OURS] + before[rocm]
    assert {key: value for key, value in after.items() if key != rocm} == {k: v for k, v in before.items() if k != rocm}
    assert len(report["plugin_log"]) == 1 and "first in" in report["plugin_log"][0]
    assert "already first" in report["second_register"]
    assert report["lists_after_second"] == after


def test_vllm_chooses_ours_on_gfx1100_and_its_own_elsewhere(report):
    for layer, choice in report["choices"].items():
        if report["target"] == "gfx1100":
            assert choice["chosen"] == OURS, layer
        else:
            # Exactly what vLLM chooses without the plugin (which is never ours).
            assert choice["chosen"] == choice["without_plugin"], layer
            assert choice["chosen"] != OURS, layer


def _version(report) -> tuple[int, int]:
    major, minor = report["vllm_version"].split(".")[:2]
    return int(major), int(minor)


def _layers(report) -> dict:
    if report["target"] != "gfx1100":
        pytest.skip("layers are built where our kernel is chosen (gfx1100)")
    return report["layers"]


def test_layers_from_vllms_quant_methods_match_the_reference(report):
    layers = _layers(report)
    assert any(name.startswith("compressed-tensors") and "asym" in name for name in layers)
    methods = report["quant_methods"]
    if _version(report) >= (0, 33):  # GPTQ goes through these kernels on ROCm from 0.33.0 on
        assert all(methods.values()), methods
    if methods["auto_gptq"]:
        assert any(name.startswith("auto_gptq") for name in layers)
        assert any(name.startswith("tiny checkpoint") for name in layers)
    if methods["quark_w4a16"]:
        assert any(name.startswith("quark") and "asym" in name for name in layers)
    for name, result in layers.items():
        assert result["load_error"] is None, (name, result["load_error"])
        assert result["kernel"] == OURS, name
        assert result["rel_error"] < result["bound"], (name, result["rel_error"])
        params = result["params_after"]
        packed = next(params[p] for p in ("qweight", "weight_packed", "weight") if p in params)
        assert packed[:3] == ["torch.int32", [result["k"] // 8, result["n"]], True], name  # kernel layout b_q [K/8, N]
        assert all(contiguous for _, _, contiguous, _ in params.values()), name  # what the ops take
        zero_point_name = result["zero_point_name"]
        zeros = params.get(zero_point_name) if zero_point_name else None
        if "asym" in name:
            assert result["kernel_reads"][0] == zero_point_name and zeros is not None and not zeros[3], name
        else:
            # Symmetric: zero points the method names are not read, but kept for the next weight
            # update, marked retired (vLLM 0.34.0's mark; this package sets it under older ones).
            assert result["kernel_reads"][0] is None, name
            assert zeros is None or zeros[3], name


def test_weight_updates_load_new_weights_into_the_same_memory(report):
    """vLLM's weight update (RL weight sync, reload_weights) in each reload mode the installed vLLM
    has: the second checkpoint's answers after it, and every parameter at its address (captured
    CUDA graphs read it) unless vLLM's own part of the processing moves it (Quark's conversion
    rebinds its weight in the direct mode, whatever the kernel)."""
    layers = _layers(report)
    if not report["reload_modes"]:
        pytest.skip(f"vLLM {report['vllm_version']} has no weight-update functions")
    modes = {name.rsplit(" ", 1)[1] for name in layers}
    assert "layerwise" in modes and ("direct" in modes or _version(report) < (0, 34)), modes
    for name, result in layers.items():
        assert result["load_error"] is None and result["reload_error"] is None, (name, result)
        assert result["rel_error_after_reload"] < result["bound"], (name, result["rel_error_after_reload"])
        assert result["rel_error_reloaded_vs_first"] > 0.5, name  # the two checkpoints differ: it did reload
        assert result["params_after_reload"] == result["params_after"], name
        kept, kept_by_vllm = result["addresses_kept"], result["addresses_kept_by_vllm_alone"]
        assert kept.keys() == kept_by_vllm.keys(), name  # no parameter dropped, none added
        assert {p for p, same in kept_by_vllm.items() if same} <= {p for p, same in kept.items() if same}, (name, kept)
        if not name.startswith("quark"):
            assert all(kept.values()), (name, kept)
