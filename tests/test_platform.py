"""gcn_arch() with amdsmi mocked: every answer, every failure, quiet stdout, env override, and the
KFD topology fallback on a fake sysfs tree."""

import os
import subprocess
import sys
import textwrap
import threading
import types
from pathlib import Path

import pytest
import torch

from w4a16_rdna3 import platform


@pytest.fixture(autouse=True)
def fresh_probe(monkeypatch, tmp_path):
    monkeypatch.delenv(platform.ARCH_ENV, raising=False)
    # No KFD topology unless a test writes one: the host's real GPUs must not answer for amdsmi's failures.
    monkeypatch.setattr(platform, "KFD_TOPOLOGY_NODES", tmp_path / "kfd" / "topology" / "nodes")
    platform.cache_clear()
    yield
    platform.cache_clear()


class FakeAmdSmi(types.ModuleType):
    """Stands in for the amdsmi module; records the calls made on it."""

    def __init__(self, arch: object = "gfx1100", *, handles=("gpu0",), init_error=None, query_error=None):
        super().__init__("amdsmi")
        self.arch, self.handles = arch, list(handles)
        self.init_error, self.query_error = init_error, query_error
        self.calls: list[str] = []

    def amdsmi_init(self):
        self.calls.append("init")
        if self.init_error is not None:
            raise self.init_error

    def amdsmi_shut_down(self):
        self.calls.append("shut_down")

    def amdsmi_get_processor_handles(self):
        self.calls.append("handles")
        return self.handles

    def amdsmi_get_gpu_asic_info(self, handle):
        self.calls.append(f"asic_info({handle})")
        if self.query_error is not None:
            raise self.query_error
        return {"market_name": "Radeon", "target_graphics_version": self.arch}


def install(monkeypatch, fake: types.ModuleType | None) -> None:
    monkeypatch.setitem(sys.modules, "amdsmi", fake)


@pytest.mark.parametrize(
    "arch, gfx11, gfx1100, gfx1151",
    [
        ("gfx1100", True, True, False),
        ("gfx1101", True, False, False),
        ("gfx1151", True, False, True),
        ("gfx942", False, False, False),
    ],
)
def test_arch_from_amdsmi(monkeypatch, arch, gfx11, gfx1100, gfx1151):
    fake = FakeAmdSmi(arch)
    install(monkeypatch, fake)
    assert platform.gcn_arch() == arch
    assert (platform.on_gfx11(), platform.on_gfx1100(), platform.on_gfx1151()) == (gfx11, gfx1100, gfx1151)
    assert platform.gcn_arch_reason() == f"{arch} from amdsmi (GPU 0)"
    assert fake.calls == ["init", "handles", "asic_info(gpu0)", "shut_down"]


@pytest.mark.parametrize(
    "raw, arch",
    [(0x1100, "gfx1100"), (0x90A, "gfx90a"), ("0x1151", "gfx1151"), ("1101", "gfx1101"),
     ("GFX1100", "gfx1100"), ("gfx90a:sramecc+:xnack-", "gfx90a")],
)
def test_arch_name_forms_across_amdsmi_versions(monkeypatch, raw, arch):
    install(monkeypatch, FakeAmdSmi(raw))
    assert platform.gcn_arch() == arch


@pytest.mark.parametrize("raw", ["N/A", "", None, 0])
def test_unreadable_arch_name(monkeypatch, raw):
    fake = FakeAmdSmi(raw)
    install(monkeypatch, fake)
    assert platform.gcn_arch() is None
    assert "target_graphics_version" in platform.gcn_arch_reason()
    assert fake.calls[-1] == "shut_down"


def test_amdsmi_not_installed(monkeypatch):
    install(monkeypatch, None)  # a None entry makes `import amdsmi` raise ImportError
    assert platform.gcn_arch() is None
    assert not platform.on_gfx11()
    assert platform.gcn_arch_reason().startswith("amdsmi is not installed")


def _broken_amdsmi_package(tmp_path, body: str) -> None:
    package = tmp_path / "amdsmi"
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent(body))


def test_import_printing_and_raising_keyerror_keeps_stdout_clean(monkeypatch, tmp_path, capfd):
    # What PyPI amdsmi 7.0.2 does without ROCm: print to stdout, then KeyError('libamd_smi.so').
    # The os.write line stands for a print from C, below Python's sys.stdout.
    _broken_amdsmi_package(tmp_path, """
        import os
        print("Could not load libamd_smi.so")
        print("Unable to find libamd_smi.so library try installing amd-smi-lib")
        os.write(1, b"printed by C\\n")
        raise KeyError("libamd_smi.so")
    """)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "amdsmi", raising=False)
    assert platform.gcn_arch() is None
    print("still printing")
    out, _ = capfd.readouterr()
    assert out == "still printing\n"
    reason = platform.gcn_arch_reason()
    assert "KeyError('libamd_smi.so')" in reason and "amd-smi-lib" in reason


def test_import_raising_system_exit_is_caught(monkeypatch, tmp_path):
    _broken_amdsmi_package(tmp_path, "raise SystemExit(3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "amdsmi", raising=False)
    assert platform.gcn_arch() is None
    assert "SystemExit(3)" in platform.gcn_arch_reason()


def test_keyboard_interrupt_during_import_propagates(monkeypatch, tmp_path):
    _broken_amdsmi_package(tmp_path, "raise KeyboardInterrupt\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "amdsmi", raising=False)
    with pytest.raises(KeyboardInterrupt):
        platform.gcn_arch()


def test_init_failure(monkeypatch):
    fake = FakeAmdSmi(init_error=RuntimeError("AMDSMI_STATUS_INIT_ERROR"))
    install(monkeypatch, fake)
    assert platform.gcn_arch() is None
    assert platform.gcn_arch_reason().startswith("amdsmi_init failed: RuntimeError('AMDSMI_STATUS_INIT_ERROR')")
    assert fake.calls == ["init"]  # nothing to shut down after a failed init


def test_no_gpu(monkeypatch):
    fake = FakeAmdSmi(handles=())
    install(monkeypatch, fake)
    assert platform.gcn_arch() is None
    assert platform.gcn_arch_reason().startswith("amdsmi found no AMD GPU; no KFD topology at ")
    assert fake.calls == ["init", "handles", "shut_down"]


def test_query_failure_still_shuts_down(monkeypatch):
    fake = FakeAmdSmi(query_error=OSError("permission denied"))
    install(monkeypatch, fake)
    assert platform.gcn_arch() is None
    assert platform.gcn_arch_reason().startswith("amdsmi query failed: OSError('permission denied'); ")
    assert fake.calls[-1] == "shut_down"


def test_answer_is_cached_until_cache_clear(monkeypatch):
    fake = FakeAmdSmi("gfx1100")
    install(monkeypatch, fake)
    assert platform.gcn_arch() == "gfx1100" and platform.on_gfx1100()
    assert platform.gcn_arch_reason() and fake.calls.count("init") == 1
    fake.arch = "gfx1101"
    assert platform.gcn_arch() == "gfx1100"
    platform.cache_clear()
    assert platform.gcn_arch() == "gfx1101" and fake.calls.count("init") == 2


def test_env_override_wins_without_asking_amdsmi(monkeypatch):
    fake = FakeAmdSmi("gfx942")
    install(monkeypatch, fake)
    monkeypatch.setenv(platform.ARCH_ENV, "gfx1100")
    assert platform.gcn_arch() == "gfx1100" and platform.on_gfx1100()
    assert platform.gcn_arch_reason() == "gfx1100 from W4A16_RDNA3_ARCH"
    assert fake.calls == []


def test_env_override_that_is_not_an_arch(monkeypatch):
    install(monkeypatch, FakeAmdSmi("gfx1100"))
    monkeypatch.setenv(platform.ARCH_ENV, "rtx4090")
    assert platform.gcn_arch() is None
    assert platform.ARCH_ENV in platform.gcn_arch_reason()


def test_probe_never_touches_torch_cuda(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("platform must not initialise HIP/CUDA")

    for name in ("is_available", "device_count", "init", "get_device_properties"):
        monkeypatch.setattr(torch.cuda, name, forbidden)
    install(monkeypatch, FakeAmdSmi("gfx1100"))
    assert platform.gcn_arch() == "gfx1100"


def test_real_environment_prints_nothing_but_the_answer():
    # Whatever amdsmi this machine has (none, PyPI without ROCm, or a working one), the probe
    # must leave stdout to the caller. platform.py is loaded on its own, without the package's
    # __init__, so only its own output is judged.
    source = os.path.abspath(platform.__file__)
    code = textwrap.dedent(f"""
        import importlib.util
        spec = importlib.util.spec_from_file_location("w4a16_platform", {source!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        print(repr(module.gcn_arch()))
    """)
    env = {k: v for k, v in os.environ.items() if k != platform.ARCH_ENV}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and (lines[0] == "None" or lines[0].startswith("'gfx")), result.stdout


def test_two_gpus_reason_names_the_second(monkeypatch):
    fake = FakeAmdSmi("gfx1036", handles=("igpu", "dgpu"))
    archs = {"igpu": "gfx1036", "dgpu": "gfx1100"}
    fake.amdsmi_get_gpu_asic_info = lambda handle: {"target_graphics_version": archs[handle]}
    install(monkeypatch, fake)
    assert platform.gcn_arch() == "gfx1036"
    assert platform.gcn_arch_reason() == "gfx1036 from amdsmi (GPU 0; GPU 1 is gfx1100)"


def test_concurrent_probes_leave_stdout_working(monkeypatch, tmp_path, capfd):
    _broken_amdsmi_package(tmp_path, """
        import os
        os.write(1, b"noise\\n")
        raise KeyError("libamd_smi.so")
    """)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "amdsmi", raising=False)
    start = threading.Barrier(4)

    def probe_many():
        start.wait()
        for _ in range(25):
            platform._probe.__wrapped__()  # the probe without its cache

    threads = [threading.Thread(target=probe_many) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    os.write(1, b"after\n")
    out, _ = capfd.readouterr()
    assert out == "after\n"


def test_output_of_amdsmi_calls_is_silenced_too(monkeypatch, capfd):
    fake = FakeAmdSmi("gfx1100")
    original_init = fake.amdsmi_init

    def noisy_init():
        print("amdsmi: warning from Python")
        os.write(1, b"amdsmi: warning from C\n")
        original_init()

    fake.amdsmi_init = noisy_init
    install(monkeypatch, fake)
    assert platform.gcn_arch() == "gfx1100"
    out, _ = capfd.readouterr()
    assert out == ""


def write_kfd_node(index: int, gfx_target_version: int) -> Path:
    """A KFD node under the fixture's KFD_TOPOLOGY_NODES with the lines around gfx_target_version a real one has."""
    node = platform.KFD_TOPOLOGY_NODES / str(index)
    node.mkdir(parents=True)
    cores = "cpu_cores_count 0\nsimd_count 192\n" if gfx_target_version else "cpu_cores_count 16\nsimd_count 0\n"
    (node / "properties").write_text(f"{cores}gfx_target_version {gfx_target_version}\nvendor_id 4098\n")
    return node / "properties"


def test_kfd_topology_finds_the_gpu_after_the_cpu_node(monkeypatch):
    install(monkeypatch, None)  # a pip venv: no amdsmi
    write_kfd_node(0, 0)
    properties = write_kfd_node(1, 110000)
    assert platform.gcn_arch() == "gfx1100" and platform.on_gfx1100()
    reason = platform.gcn_arch_reason()
    assert reason.startswith(f"gfx1100 from the KFD topology ({properties}; amdsmi is not installed")


def test_kfd_topology_takes_the_first_gpu_in_numeric_node_order(monkeypatch):
    install(monkeypatch, None)
    write_kfd_node(0, 0)
    write_kfd_node(10, 110501)  # "10" sorts before "2" as text
    properties = write_kfd_node(2, 110000)
    assert platform.gcn_arch() == "gfx1100"
    assert platform.gcn_arch_reason().startswith(f"gfx1100 from the KFD topology ({properties}; node 10 is gfx1151; ")


@pytest.mark.parametrize(
    "gfx_target_version, arch",
    [(110000, "gfx1100"), (110001, "gfx1101"), (110501, "gfx1151"), (100300, "gfx1030"), (90010, "gfx90a"),
     (90402, "gfx942"), (120001, "gfx1201")],
)
def test_kfd_gfx_target_version_decodes_to_the_rocm_arch_name(monkeypatch, gfx_target_version, arch):
    install(monkeypatch, None)
    write_kfd_node(0, 0)
    write_kfd_node(1, gfx_target_version)
    assert platform.gcn_arch() == arch


@pytest.mark.parametrize(
    "fake, amdsmi_reason",
    [(None, "amdsmi is not installed"),
     (FakeAmdSmi(init_error=RuntimeError("AMDSMI_STATUS_DRIVER_NOT_LOADED")), "amdsmi_init failed"),
     (FakeAmdSmi(handles=()), "amdsmi found no AMD GPU"),
     (FakeAmdSmi(query_error=OSError("permission denied")), "amdsmi query failed"),
     (FakeAmdSmi("N/A"), "amdsmi reported no usable arch name")],
)
def test_every_amdsmi_failure_falls_back_to_the_kfd_topology(monkeypatch, fake, amdsmi_reason):
    install(monkeypatch, fake)
    write_kfd_node(0, 0)
    write_kfd_node(1, 110000)
    assert platform.gcn_arch() == "gfx1100"
    reason = platform.gcn_arch_reason()
    assert reason.startswith("gfx1100 from the KFD topology (") and amdsmi_reason in reason


def test_kfd_topology_without_a_gpu_node(monkeypatch):
    install(monkeypatch, None)
    write_kfd_node(0, 0)
    assert platform.gcn_arch() is None
    reason = platform.gcn_arch_reason()
    assert reason.startswith("amdsmi is not installed")
    assert reason.endswith(f"; the KFD topology at {platform.KFD_TOPOLOGY_NODES} lists no GPU node")


def test_no_kfd_topology(monkeypatch):
    install(monkeypatch, None)
    assert platform.gcn_arch() is None
    reason = platform.gcn_arch_reason()
    assert reason.startswith("amdsmi is not installed")
    assert f"; no KFD topology at {platform.KFD_TOPOLOGY_NODES} (" in reason


def test_kfd_node_this_process_may_not_read_is_skipped(monkeypatch):
    # The kernel answers EPERM for a GPU outside the container's device cgroup; a directory in place
    # of the file fails the read the same way (as root too).
    install(monkeypatch, None)
    write_kfd_node(0, 0)
    (platform.KFD_TOPOLOGY_NODES / "1" / "properties").mkdir(parents=True)
    write_kfd_node(2, 110001)
    assert platform.gcn_arch() == "gfx1101"


def test_env_override_wins_over_the_kfd_topology(monkeypatch):
    install(monkeypatch, None)
    write_kfd_node(1, 90402)
    monkeypatch.setenv(platform.ARCH_ENV, "gfx1100")
    assert platform.gcn_arch() == "gfx1100"
    assert platform.gcn_arch_reason() == "gfx1100 from W4A16_RDNA3_ARCH"


def test_working_amdsmi_wins_over_the_kfd_topology(monkeypatch):
    install(monkeypatch, FakeAmdSmi("gfx1151"))
    write_kfd_node(1, 110000)
    assert platform.gcn_arch() == "gfx1151"
    assert platform.gcn_arch_reason() == "gfx1151 from amdsmi (GPU 0)"


def _initialised_rocm_torch(monkeypatch, arch_name: str, device: int = 1) -> list[int]:
    """torch as in a vLLM worker on ROCm, HIP initialised on `device`; returns the devices asked about."""
    asked: list[int] = []
    monkeypatch.setattr(torch.version, "hip", "6.4.43482")
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: device)

    def properties(index: int) -> types.SimpleNamespace:
        asked.append(index)
        return types.SimpleNamespace(gcnArchName=arch_name)

    monkeypatch.setattr(torch.cuda, "get_device_properties", properties)
    return asked


def test_initialised_rocm_torch_answers_for_its_own_device(monkeypatch):
    # A Ryzen desktop: its integrated GPU (gfx1036) is amdsmi's GPU 0; the worker runs on the card.
    install(monkeypatch, FakeAmdSmi("gfx1036"))
    asked = _initialised_rocm_torch(monkeypatch, "gfx1100:sramecc-:xnack-")
    assert platform.gcn_arch() == "gfx1100" and platform.on_gfx1100()
    assert platform.gcn_arch_reason() == "gfx1100 from PyTorch (this process's device 1)"
    assert asked and set(asked) == {1}


def test_torch_that_has_not_initialised_hip_is_not_asked(monkeypatch):
    install(monkeypatch, FakeAmdSmi("gfx1036"))
    asked = _initialised_rocm_torch(monkeypatch, "gfx1100")
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    assert platform.gcn_arch() == "gfx1036"
    assert asked == []


def test_cuda_torch_is_not_asked(monkeypatch):
    install(monkeypatch, FakeAmdSmi("gfx1100"))
    asked = _initialised_rocm_torch(monkeypatch, "sm_90")
    monkeypatch.setattr(torch.version, "hip", None)
    assert platform.gcn_arch() == "gfx1100"
    assert asked == []


def test_env_override_wins_over_initialised_torch(monkeypatch):
    install(monkeypatch, FakeAmdSmi("gfx1036"))
    _initialised_rocm_torch(monkeypatch, "gfx1100")
    monkeypatch.setenv(platform.ARCH_ENV, "gfx1151")
    assert platform.gcn_arch() == "gfx1151"
    assert platform.gcn_arch_reason() == "gfx1151 from W4A16_RDNA3_ARCH"
