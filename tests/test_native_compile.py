"""The native ops under torch.compile and CUDA graphs, and bitwise determinism.

- torch.compile(fullgraph=True, dynamic=True) of a function calling `gemm` gives the eager result
  bit for bit at M = 1 (decode kernel) and M = 512 (WMMA kernel): the M-dependent choice is made
  inside the op, so one graph serves both.
- A captured CUDA graph replayed on new inputs gives the eager result bit for bit (the split-K
  workspace comes from the caching allocator, which graph capture supports).
- Two calls on the same inputs give identical bits, with split-K active (no atomics anywhere).
"""

from __future__ import annotations

import importlib

import pytest
import torch

from conftest import rel_error, requires_cuda
from w4a16_rdna3 import _ops
from w4a16_rdna3.reference import gemm_reference

pytestmark = requires_cuda

BUILDS = {"native": ("w4a16_rdna3", "w4a16_rdna3._C"), "rdna3_emu": ("w4a16_rdna3_emu", "w4a16_rdna3._C_rdna3_emu")}
BOUND = {torch.float16: 1e-3, torch.bfloat16: 8e-3}


def require_build(build: str) -> None:
    if build == "rdna3_emu" and torch.version.hip is not None:
        pytest.skip("the RDNA3 emulation build exists only on CUDA")
    importlib.import_module(BUILDS[build][1])


def layer(k: int, n: int, dtype: torch.dtype, seed: int):
    from w4a16_rdna3.quantize import random_layer

    w = random_layer(k, n, 128, symmetric=False, act_order=True, dtype=dtype, device="cuda", seed=seed)
    bias = torch.randn((n,), generator=torch.Generator().manual_seed(seed), dtype=torch.float32).to(dtype).cuda()
    return w.b_q, w.scales, w.zeros, w.perm, bias


def activations(m: int, k: int, dtype: torch.dtype, seed: int) -> torch.Tensor:
    return torch.randn((m, k), generator=torch.Generator().manual_seed(seed), dtype=torch.float32).to(dtype).cuda()


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("dtype", (torch.float16, torch.bfloat16), ids=("fp16", "bf16"))
def test_torch_compile_fullgraph_dynamic_matches_eager(build, dtype):
    require_build(build)
    torch._dynamo.reset()
    k, n = 4096, 256
    weights = layer(k, n, dtype, seed=1)

    def linear(x: torch.Tensor) -> torch.Tensor:
        return _ops.gemm(x, *weights, backend=build) * 2

    compiled = torch.compile(linear, fullgraph=True, dynamic=True)
    for m in (1, 512, 3):
        x = activations(m, k, dtype, seed=m)
        eager = linear(x)
        out = compiled(x)
        assert out.shape == (m, n)
        assert torch.equal(out, eager), f"M={m}: compiled differs from eager (rel {rel_error(out, eager):.2e})"


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("m", (1, 8, 512))
def test_cuda_graph_replay_matches_eager(build, m):
    require_build(build)
    dtype = torch.float16
    k, n = 14336, 512  # few column tiles: the decode kernel splits K (workspace inside the graph)
    weights = layer(k, n, dtype, seed=2)
    static_x = activations(m, k, dtype, seed=3)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            _ops.gemm(static_x, *weights, backend=build)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = _ops.gemm(static_x, *weights, backend=build)
    for seed in (4, 5):
        x = activations(m, k, dtype, seed=seed)
        static_x.copy_(x)
        static_out.fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        eager = _ops.gemm(x, *weights, backend=build)
        assert torch.equal(static_out, eager), f"M={m}: replay differs from eager"
        assert rel_error(static_out, gemm_reference(x, *weights)) <= BOUND[dtype]


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("op,m", (("gemm_dot2", 1), ("gemm_dot2", 5), ("gemm_dot2", 16), ("gemm_wmma", 64), ("gemm", 512)))
# (1536, 17920): 4-warp decode blocks in 3 K splits at M = 1 on GPUs of 132 SMs (gemm_dot2_plan.h).
@pytest.mark.parametrize(
    "kn", ((14336, 4096), (4096, 256), (1536, 17920)), ids=("K14336N4096", "K4096N256", "K1536N17920")
)
def test_bitwise_deterministic(build, op, m, kn):
    require_build(build)
    k, n = kn
    weights = layer(k, n, torch.bfloat16, seed=6)
    x = activations(m, k, torch.bfloat16, seed=7)
    fn = getattr(getattr(torch.ops, BUILDS[build][0]), op)
    first = fn(x, *weights)
    for _ in range(3):
        torch.empty_like(first).fill_(float("nan"))
        again = fn(x, *weights)
        assert torch.equal(first, again)
