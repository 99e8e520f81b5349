"""A tiny local GPTQ checkpoint (tests/vllm/tiny_checkpoint.py) read back through `formats` and
through the kernel classes, checked against the reference. Needs no vLLM and downloads nothing.
"""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from conftest import rel_error
from w4a16_rdna3.formats import from_gptq
from w4a16_rdna3.kernels import TritonW4A16LinearKernel, gptq_layer_config
from w4a16_rdna3.reference import gemm_reference


def _load_builder():
    # By path: tests/vllm is not importable as a package (its name would shadow vLLM).
    path = Path(__file__).parent / "vllm" / "tiny_checkpoint.py"
    spec = importlib.util.spec_from_file_location("tiny_checkpoint", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tiny = _load_builder()

# fp32 reference rounded once to the activation dtype (see test_kernels.py).
BOUND = {torch.float16: 2e-3, torch.bfloat16: 1e-2}
# 4-bit round-to-nearest against the weights before quantisation: per weight the error is up to
# half a step of (range / 15); over a dot product that came to 7-13% relative on these layers.
# A transposed, shuffled or mis-zeroed layer is off by ~100%.
QUANTISATION_BOUND = 0.2

CASES = [
    # group_size, symmetric, act_order, checkpoint_format, dtype
    (32, True, False, "gptq", torch.float16),
    (32, False, True, "gptq", torch.bfloat16),
    (-1, False, False, "gptq_v2", torch.float16),
    (64, True, True, "gptq_v2", torch.float16),
]


@pytest.fixture(
    params=CASES,
    ids=lambda c: f"G{c[0]}-{'sym' if c[1] else 'asym'}-{'actorder-' if c[2] else ''}{c[3]}-{str(c[4])[6:]}",
)
def checkpoint(request, tmp_path):
    group_size, symmetric, act_order, fmt, dtype = request.param
    built = tiny.build_tiny_gptq_checkpoint(
        tmp_path / "tiny-gptq",
        group_size=group_size,
        symmetric=symmetric,
        act_order=act_order,
        checkpoint_format=fmt,
        dtype=dtype,
        seed=7,
    )
    return built, dtype


def _quantized_prefixes(state: dict[str, torch.Tensor]) -> list[str]:
    return sorted(name.removesuffix(".qweight") for name in state if name.endswith(".qweight"))


def test_config_describes_the_quantisation(checkpoint):
    built, dtype = checkpoint
    config, state = tiny.load_tiny_checkpoint(built.path)
    q = config["quantization_config"]
    assert q == json.loads((built.path / "quantize_config.json").read_text())
    assert q["quant_method"] == "gptq" and q["bits"] == 4
    assert config["torch_dtype"] == str(dtype).removeprefix("torch.")
    assert len(_quantized_prefixes(state)) == tiny.LAYERS * len(tiny.LINEARS)
    assert state["model.embed_tokens.weight"].dtype == dtype


def test_every_layer_loads_through_formats_and_matches(checkpoint, gen):
    built, dtype = checkpoint
    config, state = tiny.load_tiny_checkpoint(built.path)
    q = config["quantization_config"]
    for prefix in _quantized_prefixes(state):
        t = {part: state[f"{prefix}.{part}"] for part in ("qweight", "qzeros", "scales", "g_idx")}
        kw = from_gptq(
            t["qweight"],
            t["qzeros"],
            t["scales"],
            t["g_idx"],
            symmetric=q["sym"],
            checkpoint_format=q["checkpoint_format"],
        )
        w = tiny.dequantize_gptq_checkpoint(**t, symmetric=q["sym"], checkpoint_format=q["checkpoint_format"])
        x = torch.randn(5, kw.k, generator=gen).to(dtype)

        out = gemm_reference(x, kw.b_q, kw.scales, kw.zeros, kw.perm)

        assert rel_error(out, x.float() @ w) < BOUND[dtype], prefix
        # With one group (K = G) act-order changes nothing, and formats drops the perm.
        assert (kw.perm is not None) == (q["desc_act"] and kw.scales.shape[0] > 1), prefix
        original = x.float() @ built.float_weights[prefix]
        assert rel_error(out, original) < QUANTISATION_BOUND, prefix


def test_every_layer_through_the_kernel_class(checkpoint, gen):
    built, dtype = checkpoint
    config, state = tiny.load_tiny_checkpoint(built.path)
    q = config["quantization_config"]
    for prefix in _quantized_prefixes(state):
        layer = torch.nn.Module()
        for part in ("qweight", "qzeros", "scales", "g_idx"):
            layer.register_parameter(part, torch.nn.Parameter(state[f"{prefix}.{part}"].clone(), requires_grad=False))
        k, n = layer.qweight.shape[0] * 8, layer.qweight.shape[1]
        layer_config = gptq_layer_config(
            k, n, q["group_size"], act_dtype=dtype, symmetric=q["sym"], act_order=q["desc_act"]
        )
        kernel = TritonW4A16LinearKernel(
            layer_config, "qweight", "scales", "qzeros", "g_idx", gptq_checkpoint_format=q["checkpoint_format"]
        )
        x = torch.randn(2, 3, k, generator=gen).to(dtype)
        w = tiny.dequantize_gptq_checkpoint(
            state[f"{prefix}.qweight"],
            state[f"{prefix}.qzeros"],
            state[f"{prefix}.scales"],
            state[f"{prefix}.g_idx"],
            symmetric=q["sym"],
            checkpoint_format=q["checkpoint_format"],
        )

        kernel.process_weights_after_loading(layer)
        out = kernel.apply_weights(layer, x)

        assert rel_error(out, x.float() @ w) < BOUND[dtype], prefix
