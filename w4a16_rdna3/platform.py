"""Which GPU is this? Its gfx arch name, found without initialising HIP/CUDA.

Initialising HIP in the parent process would break vLLM's worker processes (they fork), so the
kernel selection must not initialise torch.cuda: the first GPU's arch is asked of amdsmi, which
reads the driver's sysfs/ioctl data, or where amdsmi cannot answer (a pip venv has no amdsmi: it
ships with ROCm, not on PyPI) read from the amdgpu driver's KFD topology in sysfs. In a process
whose ROCm PyTorch has already initialised HIP (a vLLM worker, once it picked its GPU), the arch of
that process's current device is taken instead: the first GPU may be another one (a Ryzen
desktop's integrated GPU, a card HIP_VISIBLE_DEVICES hides).
Every failure returns None and keeps a reason in plain words for `w4a16-rdna3 info`.
"""

import contextlib
import ctypes
import functools
import importlib
import io
import os
import re
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

ARCH_ENV = "W4A16_RDNA3_ARCH"
_ARCH_NAME = re.compile(r"gfx[0-9a-f]+")
# One directory per KFD node (CPUs and GPUs), each with a `properties` file of "key value" lines.
KFD_TOPOLOGY_NODES = Path("/sys/class/kfd/kfd/topology/nodes")
# Redirecting fd 1 is process-wide: two threads silencing it at once could restore each other's
# /dev/null and silence stdout for good, so one at a time.
_STDOUT_LOCK = threading.Lock()


class _Probe(NamedTuple):
    arch: str | None
    reason: str


def _normalise_arch(value: object) -> str | None:
    """amdsmi's target_graphics_version across versions -> 'gfx1100' (or None if unreadable).

    amdsmi 7.x returns "gfx" + hex(int) ("gfx1100", "gfx90a"); the C struct holds the integer
    0x1100 (older bindings passed it through as an int or hex string); amd-smi's text output can
    carry target features ("gfx90a:sramecc+:xnack-").
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return f"gfx{value:x}" if value > 0 else None
    if not isinstance(value, str):
        return None
    text = value.strip().lower().split(":", 1)[0]
    if text.startswith("0x"):
        text = "gfx" + text[2:]
    elif not text.startswith("gfx"):
        text = "gfx" + text
    return text if _ARCH_NAME.fullmatch(text) else None


def _flush_c_stdout() -> None:
    # A C library's printf sits in libc's buffer until flushed; flush it while fd 1 is still
    # pointing at /dev/null, so it does not leak out after fd 1 is restored.
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).fflush(None)


@contextlib.contextmanager
def _quiet_stdout():
    """Silence stdout at both the Python and the file-descriptor level (other threads' output too,
    for the moment it takes)."""
    if sys.stdout is not None:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
    with _STDOUT_LOCK, contextlib.redirect_stdout(io.StringIO()):
        try:
            saved_fd = os.dup(1)
        except OSError:
            saved_fd = None
        if saved_fd is None:
            yield
            return
        try:
            with open(os.devnull, "wb") as devnull:
                os.dup2(devnull.fileno(), 1)
                yield
        finally:
            _flush_c_stdout()
            os.dup2(saved_fd, 1)
            os.close(saved_fd)


def _import_amdsmi() -> tuple[ModuleType | None, str]:
    """Import amdsmi; PyPI amdsmi without ROCm prints two lines and raises KeyError('libamd_smi.so')."""
    try:
        return importlib.import_module("amdsmi"), ""
    except KeyboardInterrupt:
        raise
    except ImportError as e:
        return None, f"amdsmi is not installed ({e}); install ROCm's amdsmi Python package"
    except BaseException as e:  # noqa: BLE001 - a broken install may raise anything, even SystemExit
        hint = " (its library libamd_smi.so was not found; install amd-smi-lib)" if "libamd_smi" in str(e) else ""
        return None, f"amdsmi could not be imported: {e!r}{hint}"


def _other_gpus(amdsmi: ModuleType, handles: list) -> str:
    """Notes like '; GPU 1 is gfx1036' on the GPUs after the first: an integrated GPU can come
    first, and the user should see when GPU 0 is not the card they meant."""
    notes = []
    for index, handle in enumerate(handles, start=1):
        try:
            arch = _normalise_arch(amdsmi.amdsmi_get_gpu_asic_info(handle).get("target_graphics_version"))
        except Exception:  # noqa: BLE001 - the note is optional, GPU 0 already answered
            arch = None
        notes.append(f"GPU {index} is {arch or 'unknown'}")
    return "".join(f"; {note}" for note in notes)


def _ask_amdsmi() -> _Probe:
    amdsmi, reason = _import_amdsmi()
    if amdsmi is None:
        return _Probe(None, reason)
    try:
        amdsmi.amdsmi_init()
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # noqa: BLE001
        return _Probe(None, f"amdsmi_init failed: {e!r} (no amdgpu driver loaded, or no permission)")
    try:
        handles = list(amdsmi.amdsmi_get_processor_handles())
        if not handles:
            return _Probe(None, "amdsmi found no AMD GPU")
        raw = amdsmi.amdsmi_get_gpu_asic_info(handles[0]).get("target_graphics_version")
        arch = _normalise_arch(raw)
        if arch is None:
            return _Probe(None, f"amdsmi reported no usable arch name for GPU 0 (target_graphics_version={raw!r})")
        return _Probe(arch, f"{arch} from amdsmi (GPU 0{_other_gpus(amdsmi, handles[1:])})")
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # noqa: BLE001
        return _Probe(None, f"amdsmi query failed: {e!r}")
    finally:
        with contextlib.suppress(Exception):
            amdsmi.amdsmi_shut_down()


def _arch_from_gfx_target_version(version: int) -> str:
    """KFD's major*10000 + minor*100 + stepping -> ROCm's name, minor and stepping one hex digit each
    (110000 -> gfx1100, 90010 -> gfx90a, 110501 -> gfx1151)."""
    major, minor, stepping = version // 10000, version // 100 % 100, version % 100
    return f"gfx{major}{minor:x}{stepping:x}"


def _gfx_target_version(properties: Path) -> int:
    """A node's gfx_target_version: 0 for a CPU node, and for a GPU this process may not use (the
    kernel answers EPERM for one outside the container's device cgroup)."""
    try:
        text = properties.read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "gfx_target_version":
            return int(value) if value.strip().isdigit() else 0
    return 0


def _ask_kfd_topology(amdsmi_reason: str) -> _Probe:
    """The first GPU node's arch, from sysfs alone; `amdsmi_reason` says why amdsmi did not answer."""
    try:
        nodes = sorted((node for node in KFD_TOPOLOGY_NODES.iterdir() if node.name.isdigit()),
                       key=lambda node: int(node.name))
    except OSError as e:
        return _Probe(None, f"{amdsmi_reason}; no KFD topology at {KFD_TOPOLOGY_NODES} ({e.strerror})")
    # KFD's node order: CPU nodes first, then the GPUs in the order the driver added them, which is
    # also the order ROCr numbers its GPU agents in.
    gpus = [(node, version) for node in nodes if (version := _gfx_target_version(node / "properties"))]
    if not gpus:
        return _Probe(None, f"{amdsmi_reason}; the KFD topology at {KFD_TOPOLOGY_NODES} lists no GPU node")
    first_node, first_version = gpus[0]
    arch = _arch_from_gfx_target_version(first_version)
    others = "".join(f"; node {node.name} is {_arch_from_gfx_target_version(version)}" for node, version in gpus[1:])
    return _Probe(arch, f"{arch} from the KFD topology ({first_node / 'properties'}{others}; {amdsmi_reason})")


def _from_override() -> _Probe | None:
    """W4A16_RDNA3_ARCH's arch (or why it is not one) where it is set, else None."""
    override = os.environ.get(ARCH_ENV, "").strip()
    if not override:
        return None
    arch = _normalise_arch(override)
    if arch is None:
        return _Probe(None, f"{ARCH_ENV}={override!r} is not a gfx arch name (like gfx1100)")
    return _Probe(arch, f"{arch} from {ARCH_ENV}")


@functools.cache
def _probe() -> _Probe:
    """The first GPU's arch, from amdsmi or else the KFD topology (asked once per process)."""
    # amdsmi prints to stdout when its library is missing (and its C library may print too);
    # that output would land in `w4a16-rdna3 info` tables and vLLM's logs.
    with _quiet_stdout():
        from_amdsmi = _ask_amdsmi()
    return from_amdsmi if from_amdsmi.arch is not None else _ask_kfd_topology(from_amdsmi.reason)


def _ask_initialised_torch() -> _Probe | None:
    """The current device's arch where this process's ROCm PyTorch has initialised HIP already (asking
    then initialises nothing), else None. Not cached: a process may change its current device."""
    torch = sys.modules.get("torch")
    if torch is None or getattr(torch.version, "hip", None) is None or not torch.cuda.is_initialized():
        return None
    device = torch.cuda.current_device()
    arch = _normalise_arch(getattr(torch.cuda.get_device_properties(device), "gcnArchName", None))
    return None if arch is None else _Probe(arch, f"{arch} from PyTorch (this process's device {device})")


def _answer() -> _Probe:
    return _from_override() or _ask_initialised_torch() or _probe()


def gcn_arch() -> str | None:
    """The gfx arch name ('gfx1100', ...) of this process's GPU where PyTorch has initialised it, else
    of the first GPU; or None. W4A16_RDNA3_ARCH overrides both. See gcn_arch_reason()."""
    return _answer().arch


def gcn_arch_reason() -> str:
    """Where gcn_arch() got its answer, or why it has none, in plain words."""
    return _answer().reason


def cache_clear() -> None:
    """Forget the cached amdsmi / KFD answer (tests)."""
    _probe.cache_clear()


def on_gfx11() -> bool:
    """RDNA3 family (gfx1100, gfx1101, gfx1102, gfx1103, gfx1150, gfx1151, ...)."""
    arch = gcn_arch()
    return arch is not None and arch.startswith("gfx11")


def on_gfx1100() -> bool:
    return gcn_arch() == "gfx1100"


def on_gfx1151() -> bool:
    return gcn_arch() == "gfx1151"
