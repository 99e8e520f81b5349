"""vllm_plugin.register() and the vLLM base-class lookup, against a stand-in vLLM module tree.

The stand-in has just what the plugin touches in vLLM 0.33.0's layout (MPLinearKernel,
_POSSIBLE_KERNELS keyed by PlatformEnum, current_platform) or in the older one (a single list
under vllm.model_executor.layers.quantization.kernels.mixed_precision). The real vLLM is tested
by tests/vllm/run.sh.
"""

import enum
import importlib
import importlib.metadata
import logging
import sys
import types
from abc import ABC, abstractmethod
from dataclasses import dataclass

import pytest

import w4a16_rdna3
from w4a16_rdna3 import vllm_compat

NEW_BASE = "vllm.model_executor.kernels.linear.mixed_precision"
NEW_SELECTION = "vllm.model_executor.kernels.linear"
OLD_BASE = "vllm.model_executor.layers.quantization.kernels.mixed_precision"


class PlatformEnum(enum.Enum):
    CUDA = 1
    ROCM = 2
    CPU = 5


class RocmPlatform:
    _enum = PlatformEnum.ROCM

    def is_rocm(self) -> bool:
        return True


class CudaPlatform:
    _enum = PlatformEnum.CUDA

    def is_rocm(self) -> bool:
        return False


class VllmOwnRdna3Kernel:
    """Stands for vLLM's own candidates in the lists."""


class VllmOwnTritonKernel:
    pass


def _module(monkeypatch: pytest.MonkeyPatch, name: str, **attrs) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__path__ = []  # a package, so that submodule imports look here
    module.__file__ = f"<stand-in {name}>"
    for key, value in attrs.items():
        setattr(module, key, value)
    monkeypatch.setitem(sys.modules, name, module)
    return module


def _base_module(monkeypatch: pytest.MonkeyPatch, package: str) -> types.ModuleType:
    class MPLinearKernel(ABC):
        @classmethod
        @abstractmethod
        def can_implement(cls, c): ...

    @dataclass
    class MPLinearLayerConfig:
        full_weight_shape: tuple
        partition_weight_shape: tuple
        weight_type: object
        act_type: object
        group_size: int
        zero_points: bool

    _module(monkeypatch, package)
    return _module(
        monkeypatch, f"{package}.MPLinearKernel", MPLinearKernel=MPLinearKernel, MPLinearLayerConfig=MPLinearLayerConfig
    )


@pytest.fixture
def fresh_kernels(monkeypatch: pytest.MonkeyPatch):
    """Hide any real vLLM already imported, and make the next `import w4a16_rdna3.kernels` run
    again (it picks its base class at import)."""
    for name in [name for name in sys.modules if name == "vllm" or name.startswith("vllm.")]:
        monkeypatch.setitem(sys.modules, name, None)  # importing it now raises ImportError
    monkeypatch.delitem(sys.modules, "w4a16_rdna3.kernels", raising=False)
    monkeypatch.delattr(w4a16_rdna3, "kernels", raising=False)


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch, fresh_kernels):
    """vLLM 0.33.0's layout; returns a function that builds it for a given platform."""

    def build(platform) -> dict:
        _module(monkeypatch, "vllm", __version__="0.33.0-standin")
        _module(monkeypatch, "vllm.platforms", current_platform=platform)
        _module(monkeypatch, "vllm.model_executor")
        _module(monkeypatch, "vllm.model_executor.kernels")
        candidates = {
            PlatformEnum.CUDA: [VllmOwnTritonKernel],
            PlatformEnum.ROCM: [VllmOwnRdna3Kernel, VllmOwnTritonKernel],
        }
        _module(monkeypatch, NEW_SELECTION, _POSSIBLE_KERNELS=candidates)
        _base_module(monkeypatch, NEW_BASE)
        return candidates

    return build


@pytest.fixture
def old_fake_vllm(monkeypatch: pytest.MonkeyPatch, fresh_kernels):
    """The older layout: one candidate list for all platforms, beside MPLinearKernel."""
    _module(monkeypatch, "vllm", __version__="0.8.0-standin")
    _module(monkeypatch, "vllm.platforms", current_platform=RocmPlatform())
    for name in (
        "vllm.model_executor",
        "vllm.model_executor.layers",
        "vllm.model_executor.layers.quantization",
        "vllm.model_executor.layers.quantization.kernels",
    ):
        _module(monkeypatch, name)
    candidates = [VllmOwnTritonKernel]
    _base_module(monkeypatch, OLD_BASE)
    sys.modules[OLD_BASE]._POSSIBLE_KERNELS = candidates
    return candidates


def _register() -> str:
    from w4a16_rdna3.vllm_plugin import register

    return register()


def test_rocm_puts_ours_first_and_subclasses_vllms_base(fake_vllm):
    candidates = fake_vllm(RocmPlatform())
    message = _register()
    from w4a16_rdna3 import kernels

    assert candidates[PlatformEnum.ROCM] == [kernels.RDNA3W4A16LinearKernel, VllmOwnRdna3Kernel, VllmOwnTritonKernel]
    assert candidates[PlatformEnum.CUDA] == [VllmOwnTritonKernel]
    assert issubclass(kernels.RDNA3W4A16LinearKernel, sys.modules[f"{NEW_BASE}.MPLinearKernel"].MPLinearKernel)
    assert issubclass(kernels.TritonW4A16LinearKernel, sys.modules[f"{NEW_BASE}.MPLinearKernel"].MPLinearKernel)
    assert "put w4a16_rdna3's RDNA3W4A16LinearKernel first" in message
    assert f"{NEW_SELECTION}._POSSIBLE_KERNELS[{PlatformEnum.ROCM}]" in message


def test_register_is_idempotent(fake_vllm):
    candidates = fake_vllm(RocmPlatform())
    _register()
    first = list(candidates[PlatformEnum.ROCM])
    message = _register()
    assert candidates[PlatformEnum.ROCM] == first
    assert "already first" in message


def test_register_moves_ours_to_the_front_if_something_went_before_it(fake_vllm):
    candidates = fake_vllm(RocmPlatform())
    _register()
    ours = candidates[PlatformEnum.ROCM][0]
    candidates[PlatformEnum.ROCM].insert(0, VllmOwnTritonKernel)
    _register()
    assert candidates[PlatformEnum.ROCM][0] is ours
    assert candidates[PlatformEnum.ROCM].count(ours) == 1


def test_non_rocm_changes_nothing_and_imports_no_kernel_module(fake_vllm):
    candidates = fake_vllm(CudaPlatform())
    before = {key: list(value) for key, value in candidates.items()}
    del sys.modules[NEW_SELECTION]  # importing it now would fail the test
    message = _register()
    assert candidates == before
    assert "platform is CudaPlatform, not ROCm" in message and "left unchanged" in message


def test_older_vllm_single_list(old_fake_vllm):
    message = _register()
    from w4a16_rdna3 import kernels

    assert old_fake_vllm == [kernels.RDNA3W4A16LinearKernel, VllmOwnTritonKernel]
    assert f"{OLD_BASE}._POSSIBLE_KERNELS" in message


def _hashed_environment(monkeypatch: pytest.MonkeyPatch) -> dict:
    """vllm.envs.environment_variables as vLLM 0.34 has it: getters its compile cache key hashes."""
    table = {"VLLM_PLUGINS": lambda: None}
    _module(monkeypatch, "vllm.envs", environment_variables=table)
    return table


@pytest.mark.parametrize("native_refusal", [None, "PyTorch is not a ROCm build"])
def test_rocm_keys_vllms_compiled_graphs_by_whether_ours_can_run(fake_vllm, monkeypatch, native_refusal):
    # A graph compiled while vLLM's own kernel took the layers must not be reused once ours does.
    fake_vllm(RocmPlatform())
    table = _hashed_environment(monkeypatch)
    from w4a16_rdna3 import kernels, vllm_plugin

    monkeypatch.setattr(kernels, "native_kernel_refusal", lambda: native_refusal)
    message = _register()
    state = table[vllm_plugin.COMPILE_CACHE_KEY]()
    assert state.endswith("native kernel on" if native_refusal is None else "native kernel off")
    assert state.startswith(f"w4a16_rdna3 {importlib.metadata.version('w4a16_rdna3')}")
    assert f"keyed by {vllm_plugin.COMPILE_CACHE_KEY} ({state})" in message
    assert list(table) == ["VLLM_PLUGINS", vllm_plugin.COMPILE_CACHE_KEY]


def test_non_rocm_leaves_vllms_compile_key_alone(fake_vllm, monkeypatch):
    fake_vllm(CudaPlatform())
    table = _hashed_environment(monkeypatch)
    _register()
    assert list(table) == ["VLLM_PLUGINS"]


def test_logs_exactly_one_line(fake_vllm, caplog):
    fake_vllm(RocmPlatform())
    with caplog.at_level(logging.INFO, logger="vllm.w4a16_rdna3"):
        message = _register()
    records = [r for r in caplog.records if r.name == "vllm.w4a16_rdna3"]
    assert [r.getMessage() for r in records] == [message]
    assert "\n" not in message


def test_without_vllm_register_logs_and_returns(monkeypatch, fresh_kernels, caplog):
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` raises ImportError
    with caplog.at_level(logging.INFO, logger="vllm.w4a16_rdna3"):
        message = _register()
    assert "vLLM is not importable" in message and "nothing to register" in message
    assert len(caplog.records) == 1
    from w4a16_rdna3 import kernels

    assert kernels.MPLinearKernelBase is kernels.StandaloneMPLinearKernel


def test_unknown_vllm_layout_is_a_warning_naming_the_version(monkeypatch, fresh_kernels, caplog):
    _module(monkeypatch, "vllm", __version__="9.9.9")
    _module(monkeypatch, "vllm.platforms", current_platform=RocmPlatform())
    with caplog.at_level(logging.INFO, logger="vllm.w4a16_rdna3"):
        message = _register()
    assert "not registered" in message and "vLLM 9.9.9" in message
    assert caplog.records[0].levelno == logging.WARNING
    with pytest.raises(vllm_compat.VllmLayoutUnknown, match="vLLM 9.9.9 keeps its mixed-precision linear kernels"):
        vllm_compat.find_mixed_precision()
    from w4a16_rdna3 import kernels

    assert "vLLM 9.9.9" in kernels.KERNEL_BASE_REASON


def test_a_bare_vllm_directory_is_not_vllm(monkeypatch, fresh_kernels, tmp_path):
    # tests/vllm/ (and a vLLM source checkout's parent) import as a namespace package.
    (tmp_path / "vllm").mkdir()
    monkeypatch.setitem(sys.modules, "vllm", None)  # whatever is imported here is dropped after
    monkeypatch.delitem(sys.modules, "vllm")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    if importlib.util.find_spec("vllm").origin not in (None, "namespace"):
        pytest.skip("a real vLLM is installed here and shadows the bare directory")
    with pytest.raises(vllm_compat.VllmNotFound, match="only a directory"):
        vllm_compat.vllm_version()


def test_kernel_takes_vllm_033_constructor_arguments(fake_vllm):
    fake_vllm(RocmPlatform())
    from w4a16_rdna3 import kernels

    config_cls = sys.modules[f"{NEW_BASE}.MPLinearKernel"].MPLinearLayerConfig
    # vLLM 0.33.0's config has no has_g_idx; the kernel must not need it.
    config = config_cls((256, 64), (256, 64), kernels.UINT4B8, kernels.torch.float16, 32, False)
    assert kernels.TritonW4A16LinearKernel.can_implement(config) == (True, None)
    kernel = kernels.TritonW4A16LinearKernel(
        config, w_q_param_name="weight_packed", w_s_param_name="weight_scale", w_zp_param_name="weight_zero_point"
    )
    assert (kernel.w_q_name, kernel.w_s_name, kernel.w_zp_name, kernel.w_gidx_name) == (
        "weight_packed",
        "weight_scale",
        "weight_zero_point",
        None,
    )


def _installed() -> importlib.metadata.Distribution:
    try:
        return importlib.metadata.distribution("w4a16_rdna3")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("w4a16_rdna3 is not installed (pip install -e .): no entry points to look at")


def test_entry_point_is_visible_to_importlib_metadata():
    _installed()
    plugins = importlib.metadata.entry_points(group="vllm.general_plugins")
    ours = [ep for ep in plugins if ep.name == "w4a16_rdna3"]
    assert len(ours) == 1, [ep.value for ep in plugins]
    assert ours[0].value == "w4a16_rdna3.vllm_plugin:register"
    from w4a16_rdna3.vllm_plugin import register

    assert ours[0].load() is register
