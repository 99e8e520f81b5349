"""Shared test helpers: a per-test seeded generator, relative error, and the GPU skip marker.

Import the helpers directly (`from conftest import rel_error, requires_cuda`) or use the
fixtures `gen` and `rel_error`.
"""

import math
import os
import zlib

import pytest
import torch

# Without a GPU, Triton kernels run in Triton's interpreter, which must be chosen before the
# first @triton.jit function is created, whichever test module imports Triton first.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

requires_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA/HIP GPU: torch.cuda.is_available() is False"
)


def rel_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    """||out - ref|| / ||ref|| in float64; inf when out has a NaN/inf or the shapes differ.

    A NaN must never pass a `rel_error(...) < bound` check, and poisoned (NaN-filled) outputs
    that a kernel failed to write must read as failures.
    """
    if out.shape != ref.shape:
        return math.inf
    out64 = out.detach().to("cpu", torch.float64)
    ref64 = ref.detach().to("cpu", torch.float64)
    if not bool(torch.isfinite(out64).all()):
        return math.inf
    diff = float(torch.linalg.vector_norm(out64 - ref64))
    norm = float(torch.linalg.vector_norm(ref64))
    if norm == 0.0:
        return 0.0 if diff == 0.0 else math.inf
    return diff / norm


@pytest.fixture
def gen(request: pytest.FixtureRequest) -> torch.Generator:
    """A CPU generator seeded from the test's id: fresh data per test, the same on every run."""
    return torch.Generator().manual_seed(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture(name="rel_error")
def _rel_error_fixture():
    return rel_error
