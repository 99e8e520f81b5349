"""One process of the real vLLM with the GPU mocked; writes what happened as JSON for
test_vllm_integration.py. vLLM resolves its platform and the gfx arch once per process, so each
GPU is its own process.

    python scenario.py ARCH OUT.json        ROCm with an AMD GPU of arch ARCH (gfx1100, gfx942, ...)
    python scenario.py cuda OUT.json        a CUDA platform (vLLM's kernel modules are imported
                                            under a stand-in gfx942 first: on this CPU machine vLLM's
                                            CUDA import needs libcuda and its compiled ops)

The GPU is mocked at amdsmi (fake_gpu/amdsmi.py, first on PYTHONPATH; FAKE_AMDSMI_ARCH), so vLLM
and w4a16_rdna3 both see it through their own code. Two things cannot be real here and are
mocked on top: torch is a ROCm build (torch.version.hip; its torch.cuda answers the stand-in GPU's
arch and capability, which older vLLMs ask there, and says no GPU can run), and w4a16_rdna3's
native extension is built for gfx11 (its build info): so that on gfx1100 our kernel is chosen, and
on the other arches the arch alone is what makes it refuse. On the CPU, apply_weights runs the
reference.

Each layer is built by one of vLLM's own quant methods (those this vLLM has), loaded and processed
as vLLM's model loader does, then, where this vLLM has weight updates, updated with a second
checkpoint in each of its reload modes.
"""

import dataclasses
import functools
import importlib.util
import inspect
import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import torch

MOCK_HIP_VERSION = "7.0.0-standin"
MOCK_BUILD = {"backend": "hip", "arches": ["gfx1100", "gfx1101", "gfx1102", "gfx1151"], "emulation": False}
BOUND = {torch.float16: 2e-3, torch.bfloat16: 1e-2}


def qualname(obj: object) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


def mock_rocm_torch_and_extension() -> None:
    from w4a16_rdna3 import _ops

    torch.version.hip = MOCK_HIP_VERSION
    _ops.native_build_info = lambda: dict(MOCK_BUILD)
    # vLLM 0.11.0's ROCm platform asks torch.cuda for the GPU's arch and capability, some of it at
    # import (later releases ask amdsmi): answer for the stand-in GPU, as a ROCm torch would.
    arch = os.environ["FAKE_AMDSMI_ARCH"]
    torch.cuda.get_device_properties = lambda device=None: SimpleNamespace(gcnArchName=arch, name=f"stand-in {arch}")
    torch.cuda.get_device_capability = lambda device=None: (int(arch[3:-2]), int(arch[-2], 16))
    # No GPU can run here: torch, now believing itself a ROCm build, would count GPUs through an
    # amdsmi it never imported (vLLM 0.20.0 asks at import, through torch.compile).
    torch.cuda.is_available = lambda: False


def stand_in_cuda_platform():
    from vllm.platforms.interface import DeviceCapability, Platform, PlatformEnum

    class StandInCudaPlatform(Platform):
        _enum = PlatformEnum.CUDA
        device_name = "cuda"
        device_type = "cuda"
        dispatch_key = "CUDA"

        @classmethod
        def get_device_capability(cls, device_id: int = 0) -> DeviceCapability:
            return DeviceCapability(9, 0)

    return StandInCudaPlatform()


def mixed_precision():
    """Where this vLLM keeps MPLinearKernel, its layer config and its candidate lists (the package's
    own lookup: vLLM moved them between releases)."""
    from w4a16_rdna3.vllm_compat import find_mixed_precision

    return find_mixed_precision()


def candidate_lists_by_platform() -> dict:
    """vLLM's candidate lists by platform; older releases keep one list for all ("all platforms")."""
    kernels = mixed_precision().selection_module._POSSIBLE_KERNELS
    return {str(key): value for key, value in kernels.items()} if isinstance(kernels, dict) else {"all platforms": kernels}


def layer_configs() -> dict:
    from vllm.scalar_type import scalar_types

    config_class = mixed_precision().layer_config
    # vLLM 0.33.0 dropped has_g_idx, which older releases require.
    act_order = {"has_g_idx": False} if "has_g_idx" in {f.name for f in dataclasses.fields(config_class)} else {}

    def config(weight_type, act_type, group_size, zero_points):
        return config_class(
            full_weight_shape=(4096, 4096),
            partition_weight_shape=(4096, 4096),
            weight_type=weight_type,
            act_type=act_type,
            group_size=group_size,
            zero_points=zero_points,
            **act_order,
        )

    return {
        "uint4b8 fp16 G128": config(scalar_types.uint4b8, torch.float16, 128, False),
        "uint4b8 bf16 G128": config(scalar_types.uint4b8, torch.bfloat16, 128, False),
        "uint4 zero points fp16 G32": config(scalar_types.uint4, torch.float16, 32, True),
        "uint4b8 fp16 channelwise": config(scalar_types.uint4b8, torch.float16, -1, False),
    }


def choose(config, capability: int | None) -> str:
    try:
        return qualname(mixed_precision().selection_module.choose_mp_linear_kernel(config, capability))
    except ValueError as e:
        return f"ValueError: {str(e).splitlines()[0]}"


def choices(capability: int | None) -> dict:
    """Per layer config: vLLM's choice now, and its choice with our kernel taken out of the lists."""
    from w4a16_rdna3.kernels import RDNA3W4A16LinearKernel

    lists = candidate_lists_by_platform()
    result = {}
    for name, config in layer_configs().items():
        with_plugin = choose(config, capability)
        saved = {key: list(value) for key, value in lists.items()}
        for value in lists.values():
            value[:] = [k for k in value if k is not RDNA3W4A16LinearKernel]
        without_plugin = choose(config, capability)
        for key, value in saved.items():
            lists[key][:] = value
        result[name] = {"chosen": with_plugin, "without_plugin": without_plugin}
    return result


def candidate_lists() -> dict:
    return {key: [qualname(k) for k in value] for key, value in candidate_lists_by_platform().items()}


def init_single_process_distributed() -> None:
    from vllm.config import VllmConfig, set_current_vllm_config
    from vllm.distributed import init_distributed_environment, initialize_model_parallel

    with set_current_vllm_config(VllmConfig()):
        init_method = "file://" + str(Path(tempfile.mkdtemp()) / "dist-init")
        init_distributed_environment(
            world_size=1, rank=0, distributed_init_method=init_method, local_rank=0, backend="gloo"
        )
        initialize_model_parallel(1, 1)


def load(layer: torch.nn.Module, tensors: dict) -> None:
    """Each tensor through its vLLM parameter's own weight_loader, as the model loader does."""
    for name, tensor in tensors.items():
        param = getattr(layer, name)
        param.weight_loader(param, tensor)


def rel_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    if not bool(torch.isfinite(out).all()):
        return float("inf")
    return float((out.double() - ref.double()).norm() / ref.double().norm())


# What vLLM's post-load processing reads of the model config (nothing here ties embeddings).
MODEL_CONFIG = SimpleNamespace(quantization="gptq", word_embeddings_untied_by_checkpoint=False)
CPU = torch.device("cpu")


def reload_modes() -> dict:
    """vLLM's weight-update entry points, (begin, finish) per reload mode it has.

    vLLM 0.34.0 has `start_reload`/`finish_reload` and two modes (VLLM_RELOAD_MODE): "layerwise"
    rebuilds each layer in checkpoint format and copies the processed tensors back; "direct"
    writes the checkpoint into the kept parameters' storage and reruns post-load processing.
    vLLM 0.33.0 has the layerwise one only, 0.11.0 none.
    """
    try:
        from vllm.model_executor.model_loader import reload
    except ImportError:  # before vLLM's weight-update functions (0.11.0)
        return {}
    if hasattr(reload, "start_reload"):
        return {mode: (reload.start_reload, reload.finish_reload) for mode in ("layerwise", "direct")}
    return {
        "layerwise": (
            reload.initialize_layerwise_reload,
            lambda model, config, device: reload.finalize_layerwise_reload(model, config),
        )
    }


def max_error(apply, layer, k: int, n: int, dtype, w: torch.Tensor, gen) -> float:
    errors = []
    for shape in ((1,), (3,), (2, 5)):
        x = torch.randn(*shape, k, generator=gen).to(dtype)
        bias = torch.randn(n, generator=gen).to(dtype)
        out = apply(layer, x, bias)
        errors.append(rel_error(out, x.float() @ w + bias.float()) if out.shape == (*shape, n) else float("inf"))
    return max(errors)


def parameters(layer: torch.nn.Module) -> dict:
    """name -> [dtype, shape, contiguous, retired (vLLM 0.34.0's mark of a loaded parameter no kernel reads)]."""
    return {
        name: [str(p.dtype), list(p.shape), p.is_contiguous(), bool(getattr(p, "retired", False))]
        for name, p in layer.named_parameters()
    }


def kernel_of(method, layer):
    return getattr(method, "kernel", None) or getattr(getattr(layer, "scheme", None), "kernel", None)


def cold_start(layer, tensors: dict, mode: str | None) -> None:
    """What vLLM's model loader does for a layer: record it for reloads (in `mode`; None: this vLLM
    has no weight updates), load, process."""
    from vllm.model_executor.model_loader.utils import process_weights_after_loading

    if mode is not None:
        from vllm.model_executor.model_loader.reload import record_metadata_for_reloading

        os.environ["VLLM_RELOAD_MODE"] = mode  # read by vLLM at each use
        record_metadata_for_reloading(layer)  # when vLLM builds the model
    load(layer, tensors)
    process_weights_after_loading(layer, MODEL_CONFIG, CPU)


def reload(layer, tensors: dict, mode: str) -> None:
    """A weight update of the layer in `mode`."""
    begin, finish = reload_modes()[mode]
    os.environ["VLLM_RELOAD_MODE"] = mode
    begin(layer)
    load(layer, tensors)
    finish(layer, MODEL_CONFIG, CPU)


def addresses(layer) -> dict:
    return {name: p.data_ptr() for name, p in layer.named_parameters()}


def kept_by_vllm_alone(new_layer, checkpoints, mode: str) -> dict:
    """Which parameters keep their address over the same cold start and reload when our kernel's
    processing does nothing: what vLLM's own part of the processing keeps."""
    method, layer = new_layer()
    kernel_of(method, layer).process_weights_after_loading = lambda layer: None
    (first, _), (second, _) = checkpoints
    cold_start(layer, first, mode)
    before = addresses(layer)
    reload(layer, second, mode)
    return {name: address == before.get(name) for name, address in addresses(layer).items()}


def run_method(new_layer, k: int, n: int, dtype, checkpoints, mode: str | None, gen) -> dict:
    """vLLM's cold start (create_weights, load, post-load processing), apply; then a weight update
    in `mode` with the second checkpoint, apply again. new_layer() -> (quant method, layer);
    checkpoints: two (tensors for the loaders, float32 weight [K, N] they hold)."""
    method, layer = new_layer()
    apply = method.apply if hasattr(method, "apply") else method.apply_weights
    (first, w_first), (second, w_second) = checkpoints

    kernel = kernel_of(method, layer)
    result = {"k": k, "n": n, "kernel": qualname(type(kernel)) if kernel is not None else "none"}
    try:
        cold_start(layer, first, mode)
    except Exception as e:  # noqa: BLE001 - reported, and failed on, by the test
        return {**result, "load_error": f"{type(e).__name__}: {e}"}
    before = addresses(layer)
    result = {
        **result,
        "load_error": None,
        "rel_error": max_error(apply, layer, k, n, dtype, w_first, gen),
        "bound": BOUND[dtype],
        "params_after": parameters(layer),
        "kernel_reads": [kernel.zeros_name, kernel.perm_name] if hasattr(kernel, "zeros_name") else None,
        "zero_point_name": getattr(kernel, "w_zp_name", None),  # as the quant method named it
    }
    if mode is None:
        return result
    try:
        reload(layer, second, mode)
    except Exception as e:  # noqa: BLE001 - reported, and failed on, by the test
        return {**result, "reload_error": f"{type(e).__name__}: {e}"}
    return {
        **result,
        "reload_error": None,
        "rel_error_after_reload": max_error(apply, layer, k, n, dtype, w_second, gen),
        "rel_error_reloaded_vs_first": max_error(apply, layer, k, n, dtype, w_first, gen),
        "params_after_reload": parameters(layer),
        "addresses_kept": {name: address == before.get(name) for name, address in addresses(layer).items()},
        "addresses_kept_by_vllm_alone": kept_by_vllm_alone(new_layer, checkpoints, mode),
    }


def two_checkpoints(checkpoint, *args) -> list:
    """Two checkpoints of one layer, each checkpoint(*args): the cold start's and the weight update's."""
    return [checkpoint(*args) for _ in range(2)]


def run_cases(cases: dict, gen) -> dict:
    """name -> (k, n, dtype, new_layer(), checkpoints() -> the two to load): run_method in every
    reload mode this vLLM has (none: load only)."""
    results = {}
    for mode in list(reload_modes()) or [None]:
        for name, (k, n, dtype, new_layer, checkpoints) in cases.items():
            results[f"{name} {mode or 'load-only'}"] = run_method(new_layer, k, n, dtype, checkpoints(), mode, gen)
    return results


def scheme_layer(scheme, method) -> tuple:
    """(method, layer) for a quant method that runs a per-layer scheme (compressed-tensors, Quark):
    the method reads layer.scheme only, so it needs no config here."""
    layer = torch.nn.Module()
    layer.scheme = scheme
    layer.quant_method = method
    return method, layer


# vLLM's quant methods that build layers on these kernels, where this vLLM has them: before 0.33.0
# GPTQ on ROCm runs vLLM's own GPTQ method (its GPTQ-Marlin route is CUDA only); 0.11.0 has no Quark W4A16.
QUANT_METHODS = {
    "auto_gptq": "vllm.model_executor.layers.quantization.auto_gptq",
    "quark_w4a16": "vllm.model_executor.layers.quantization.quark.schemes.quark_w4a16_int4",
}


def has_quant_method(name: str) -> bool:
    return importlib.util.find_spec(QUANT_METHODS[name]) is not None


def gptq_layers(gen) -> dict:
    if not has_quant_method("auto_gptq"):
        return {}
    from tiny_checkpoint import LINEARS, build_tiny_gptq_checkpoint, dequantize_gptq_checkpoint, load_tiny_checkpoint
    from vllm.model_executor.layers.quantization.auto_gptq import AutoGPTQConfig, AutoGPTQLinearMethod
    from vllm.model_executor.model_loader.weight_utils import default_weight_loader

    from w4a16_rdna3.quantize import quantize_gptq

    def gptq_checkpoint(t, group_size: int, k: int, fmt: str) -> tuple[dict, torch.Tensor]:
        g_idx = torch.arange(k, dtype=torch.int32) // (k if group_size == -1 else group_size)
        w = dequantize_gptq_checkpoint(t.qweight, t.qzeros, t.scales, g_idx, symmetric=True, checkpoint_format=fmt)
        return {"qweight": t.qweight, "qzeros": t.qzeros, "scales": t.scales}, w

    def new_layer(group_size: int, dtype: torch.dtype, k: int, n: int):
        config = AutoGPTQConfig.from_config(
            {"quant_method": "gptq", "bits": 4, "group_size": group_size, "desc_act": False, "sym": True}
        )
        method = AutoGPTQLinearMethod(config)
        layer = torch.nn.Module()
        layer.quant_method = method
        method.create_weights(layer, k, [n], k, n, dtype, weight_loader=default_weight_loader)
        return method, layer

    def quantized(group_size: int, dtype: torch.dtype, k: int, n: int) -> list:
        return [
            gptq_checkpoint(
                quantize_gptq(
                    torch.randn(k, n, generator=gen) * 0.05,
                    group_size,
                    symmetric=True,
                    dtype=dtype,
                    checkpoint_format="gptq",
                    seed=seed,
                ),
                group_size,
                k,
                "gptq",
            )
            for seed in (1, 2)
        ]

    k, n = 256, 64
    cases = {
        f"auto_gptq sym G{group_size} {str(dtype)[6:]}": (
            k,
            n,
            dtype,
            functools.partial(new_layer, group_size, dtype, k, n),
            functools.partial(quantized, group_size, dtype, k, n),
        )
        for group_size in (32, -1)
        for dtype in (torch.float16, torch.bfloat16)
    }

    # Every linear layer of a tiny local Llama-style GPTQ checkpoint, through vLLM's GPTQ method;
    # the update loads a second checkpoint of the same model.
    states = []
    for seed in (3, 4):
        built = build_tiny_gptq_checkpoint(
            Path(tempfile.mkdtemp()) / "tiny-gptq", group_size=32, symmetric=True, seed=seed
        )
        config, state = load_tiny_checkpoint(built.path)
        states.append(state)
    q = config["quantization_config"]

    def from_states(prefix: str, k: int) -> list:
        parts = ("qweight", "qzeros", "scales")
        return [
            gptq_checkpoint(
                SimpleNamespace(**{part: state[f"{prefix}.{part}"] for part in parts}),
                q["group_size"],
                k,
                q["checkpoint_format"],
            )
            for state in states
        ]

    for name, (k, n) in LINEARS.items():
        prefix = f"model.layers.0.{name}"
        cases[f"tiny checkpoint {prefix}"] = (
            k,
            n,
            torch.float16,
            functools.partial(new_layer, q["group_size"], torch.float16, k, n),
            functools.partial(from_states, prefix, k),
        )
    return run_cases(cases, gen)


def compressed_tensors_layers(gen) -> dict:
    from vllm.model_executor.layers.quantization.compressed_tensors.compressed_tensors import (
        CompressedTensorsLinearMethod,
    )
    from vllm.model_executor.layers.quantization.compressed_tensors.schemes.compressed_tensors_wNa16 import (
        CompressedTensorsWNA16,
    )
    from vllm.model_executor.model_loader.weight_utils import default_weight_loader

    from w4a16_rdna3.formats import to_compressed_tensors, unpack_cols
    from w4a16_rdna3.quantize import quantize

    def checkpoint(k, n, group_size, symmetric, dtype, g_idx_order: str | None) -> tuple[dict, torch.Tensor]:
        """g_idx_order: None (no g_idx), "in order" (g_idx stored, groups in row order) or "shuffled"."""
        w = torch.randn(k, n, generator=gen) * 0.05
        shuffled = g_idx_order == "shuffled"
        t = to_compressed_tensors(quantize(w, group_size, symmetric=symmetric, act_order=shuffled, dtype=dtype, seed=2))
        tensors = {
            "weight_packed": t.weight_packed,
            "weight_scale": t.weight_scale,
            "weight_shape": torch.tensor([n, k]),
        }
        g = k if group_size == -1 else group_size
        g_idx = t.weight_g_idx.long() if shuffled else torch.arange(k) // g
        if g_idx_order is not None:
            tensors["weight_g_idx"] = g_idx.to(torch.int32)
        q = unpack_cols(t.weight_packed).t()
        if symmetric:
            zero = torch.full_like(q, 8)
        else:
            tensors["weight_zero_point"] = t.weight_zero_point
            zero = unpack_cols(t.weight_zero_point.t().contiguous())[g_idx]
        return tensors, (q - zero).float() * t.weight_scale.t().float()[g_idx]

    # vLLM 0.33.0 names the layer for its logs; 0.11.0 takes act-order ("group": g_idx) instead.
    # Act-order layers load two checkpoints whose g_idx are shuffled, or in order at one load only:
    # what the kernel keeps of the first must not lose the second's order.
    scheme_parameters = inspect.signature(CompressedTensorsWNA16).parameters
    g_idx_orders: tuple = ((None, None),)
    if "actorder" in scheme_parameters:
        g_idx_orders += (("shuffled", "shuffled"), ("in order", "shuffled"), ("shuffled", "in order"))

    def new_layer(strategy, group_size: int, symmetric: bool, dtype: torch.dtype, act_order: bool, k: int, n: int):
        extra = {"layer_name": "x"} if "layer_name" in scheme_parameters else {}
        if act_order:
            from compressed_tensors.quantization import ActivationOrdering

            extra["actorder"] = ActivationOrdering.GROUP
        scheme = CompressedTensorsWNA16(strategy, 4, None if group_size == -1 else group_size, symmetric, **extra)
        method, layer = scheme_layer(scheme, CompressedTensorsLinearMethod(quantization_config=None))
        scheme.create_weights(
            layer,
            output_size=n,
            input_size=k,
            output_partition_sizes=[n],
            input_size_per_partition=k,
            params_dtype=dtype,
            weight_loader=default_weight_loader,
        )
        return method, layer

    def checkpoints(k, n, group_size, symmetric, dtype, orders) -> list:
        return [checkpoint(k, n, group_size, symmetric, dtype, order) for order in orders]

    k, n = 256, 64
    cases = {
        f"compressed-tensors {strategy} G{group_size} {'sym' if symmetric else 'asym'} {str(dtype)[6:]}"
        f"{'' if orders[0] is None else ' g_idx ' + ' then '.join(orders).replace(' ', '-')}": (
            k,
            n,
            dtype,
            functools.partial(new_layer, strategy, group_size, symmetric, dtype, orders[0] is not None, k, n),
            functools.partial(checkpoints, k, n, group_size, symmetric, dtype, orders),
        )
        for strategy, group_size, symmetric, dtype in (
            ("group", 32, True, torch.float16),
            ("group", 64, False, torch.bfloat16),
            ("channel", -1, False, torch.float16),
            ("channel", -1, True, torch.bfloat16),
        )
        for orders in g_idx_orders
        if not (orders[0] is not None and strategy == "channel")  # act-order needs groups
    }
    return run_cases(cases, gen)


def quark_layers(gen) -> dict:
    """vLLM's Quark W4A16 scheme (AMD's quantizer): int4 packed along N ([K, N/8]), in order or in
    AWQ's order, signed when symmetric, true zero points [K/G, N/8] when not. vLLM converts the
    weight to GPTQ's layout and the zero points to compressed-tensors' before our kernel sees them."""
    if not has_quant_method("quark_w4a16"):
        return {}
    from vllm.model_executor.layers.quantization.quark.quark import QuarkLinearMethod
    from vllm.model_executor.layers.quantization.quark.schemes.quark_w4a16_int4 import QuarkW4A16Int4
    from vllm.model_executor.layers.quantization.utils.quant_utils import kInt4Static, kInt4StaticAsym
    from vllm.model_executor.model_loader.weight_utils import default_weight_loader

    from w4a16_rdna3.formats import pack_cols, unpack_cols, unpack_rows
    from w4a16_rdna3.quantize import quantize

    awq_order = [0, 2, 4, 6, 1, 3, 5, 7]  # "reorder": nibble i of a word holds column 8c + awq_order[i]

    def pack_along_n(values: torch.Tensor, pack_method: str) -> torch.Tensor:
        if pack_method == "reorder":
            rows, cols = values.shape
            values = values.reshape(rows, cols // 8, 8)[:, :, awq_order].reshape(rows, cols)
        return pack_cols(values)

    def checkpoint(k, n, group_size, symmetric, dtype, pack_method) -> tuple[dict, torch.Tensor]:
        kw = quantize(torch.randn(k, n, generator=gen) * 0.05, group_size, symmetric=symmetric, dtype=dtype, seed=2)
        q = unpack_rows(kw.b_q)
        zeros = torch.full((k // group_size, n), 8, dtype=torch.int32) if symmetric else unpack_cols(kw.zeros)
        tensors = {"weight": pack_along_n(q ^ 8 if symmetric else q, pack_method), "weight_scale": kw.scales}
        if not symmetric:
            tensors["weight_zero_point"] = pack_along_n(zeros, pack_method)
        w = (q - zeros.repeat_interleave(group_size, 0)).float() * kw.scales.float().repeat_interleave(group_size, 0)
        return tensors, w

    def new_layer(group_size: int, symmetric: bool, dtype: torch.dtype, pack_method: str, k: int, n: int):
        scheme = QuarkW4A16Int4(
            kInt4Static if symmetric else kInt4StaticAsym,
            None,
            pack_method,
            {"group_size": group_size, "symmetric": symmetric},
        )
        method, layer = scheme_layer(scheme, QuarkLinearMethod(quantization_config=None))
        scheme.create_weights(
            layer,
            output_partition_sizes=[n],
            input_size_per_partition=k,
            params_dtype=dtype,
            weight_loader=default_weight_loader,
            input_size=k,
            output_size=n,
        )
        return method, layer

    k, n = 256, 64  # at G = 32 both zero-point layouts are [8, 8]
    cases = {
        f"quark G{group_size} {'sym' if symmetric else 'asym'} {str(dtype)[6:]} {pack_method}": (
            k,
            n,
            dtype,
            functools.partial(new_layer, group_size, symmetric, dtype, pack_method, k, n),
            functools.partial(two_checkpoints, checkpoint, k, n, group_size, symmetric, dtype, pack_method),
        )
        for group_size, symmetric, dtype, pack_method in (
            (32, False, torch.float16, "order"),
            (64, False, torch.bfloat16, "reorder"),
            (128, True, torch.float16, "reorder"),
            (32, True, torch.bfloat16, "order"),
        )
    }
    return run_cases(cases, gen)


class LineCatcher(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def main(target: str, out: Path) -> None:
    import vllm
    from vllm.plugins import load_general_plugins, load_plugins_by_group

    import w4a16_rdna3.vllm_plugin as plugin

    report: dict = {"vllm_version": vllm.__version__, "target": target}
    found = load_plugins_by_group("vllm.general_plugins")
    report["entry_points"] = {name: qualname(func) for name, func in found.items()}
    report["ours_is_register"] = found.get("w4a16_rdna3") is plugin.register

    mock_rocm_torch_and_extension()
    import vllm.platforms

    selection = mixed_precision().selection_module
    capability = None
    if target == "cuda":
        cuda = stand_in_cuda_platform()
        vllm.platforms._current_platform = cuda
        if hasattr(selection, "current_platform"):
            selection.current_platform = cuda
        capability = 90
    report["platform"] = type(vllm.platforms.current_platform).__name__
    report["lists_before"] = candidate_lists()

    catcher = LineCatcher()
    plugin.logger.addHandler(catcher)
    plugin.logger.setLevel(logging.INFO)  # vLLM's default level; its logging setup is not run here
    load_general_plugins()  # vLLM's own loader calls our register()
    report["plugin_log"] = list(catcher.lines)
    report["lists_after"] = candidate_lists()
    report["second_register"] = plugin.register()
    # What vLLM's compile cache key hashes of the environment (0.34: envs.compile_factors), where it has it.
    import vllm.envs

    compile_factors = getattr(vllm.envs, "compile_factors", None)
    report["compile_factors_known"] = compile_factors is not None
    report["compile_key"] = compile_factors().get(plugin.COMPILE_CACHE_KEY) if compile_factors else None
    report["lists_after_second"] = candidate_lists()
    report["choices"] = choices(capability)

    if target == "gfx1100":
        gen = torch.Generator().manual_seed(0)
        init_single_process_distributed()
        report["layers"] = {**gptq_layers(gen), **compressed_tensors_layers(gen), **quark_layers(gen)}
        report["reload_modes"] = list(reload_modes())
        report["quant_methods"] = {name: has_quant_method(name) for name in QUANT_METHODS}
    out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
