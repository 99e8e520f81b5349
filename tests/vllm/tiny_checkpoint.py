"""A tiny GPTQ checkpoint made here: random Llama-style weights quantised with our quantiser.

Laid out like a Hugging Face GPTQ model folder: config.json with `quantization_config` (and the
same fields in quantize_config.json, where AutoGPTQ and vLLM's GPTQ method also look), and the
state dict in pytorch_model.bin (torch.save; no safetensors needed). Every linear layer of every
decoder block is quantised and stored as GPTQ stores it (qweight, qzeros, scales, g_idx;
`g_idx` is stored even without act-order, as GPTQ exporters do); embeddings, norms and lm_head
stay in the model dtype. Nothing is downloaded.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from w4a16_rdna3.formats import CheckpointFormat, unpack_cols, unpack_rows
from w4a16_rdna3.quantize import quantize_gptq

HIDDEN, INTERMEDIATE, HEADS, KV_HEADS, VOCAB, LAYERS = 64, 128, 4, 2, 128, 2
HEAD_DIM = HIDDEN // HEADS
# name inside a decoder block -> (in_features K, out_features N)
LINEARS: dict[str, tuple[int, int]] = {
    "self_attn.q_proj": (HIDDEN, HEADS * HEAD_DIM),
    "self_attn.k_proj": (HIDDEN, KV_HEADS * HEAD_DIM),
    "self_attn.v_proj": (HIDDEN, KV_HEADS * HEAD_DIM),
    "self_attn.o_proj": (HEADS * HEAD_DIM, HIDDEN),
    "mlp.gate_proj": (HIDDEN, INTERMEDIATE),
    "mlp.up_proj": (HIDDEN, INTERMEDIATE),
    "mlp.down_proj": (INTERMEDIATE, HIDDEN),
}
WEIGHTS_FILE = "pytorch_model.bin"


@dataclass
class TinyCheckpoint:
    path: Path
    config: dict
    # "model.layers.{i}.{linear}" -> the float32 weight [in, out] before quantisation
    float_weights: dict[str, torch.Tensor]


def _llama_config(dtype: torch.dtype, quantization_config: dict) -> dict:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "head_dim": HEAD_DIM,
        "vocab_size": VOCAB,
        "max_position_embeddings": 256,
        "rms_norm_eps": 1e-5,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "torch_dtype": str(dtype).removeprefix("torch."),
        "quantization_config": quantization_config,
    }


def build_tiny_gptq_checkpoint(
    path: Path,
    *,
    group_size: int = 32,
    symmetric: bool = True,
    act_order: bool = False,
    checkpoint_format: CheckpointFormat = "gptq",
    dtype: torch.dtype = torch.float16,
    seed: int = 0,
) -> TinyCheckpoint:
    """Write the checkpoint folder at `path` and return it with the weights before quantisation."""
    path.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    quantization_config = {
        "quant_method": "gptq",
        "bits": 4,
        "group_size": group_size,
        "desc_act": act_order,
        "sym": symmetric,
        "checkpoint_format": checkpoint_format,
    }
    state: dict[str, torch.Tensor] = {
        "model.embed_tokens.weight": torch.randn(VOCAB, HIDDEN, generator=gen).to(dtype),
        "model.norm.weight": torch.ones(HIDDEN, dtype=dtype),
        "lm_head.weight": (torch.randn(VOCAB, HIDDEN, generator=gen) * HIDDEN**-0.5).to(dtype),
    }
    float_weights: dict[str, torch.Tensor] = {}
    for layer in range(LAYERS):
        block = f"model.layers.{layer}"
        state[f"{block}.input_layernorm.weight"] = torch.ones(HIDDEN, dtype=dtype)
        state[f"{block}.post_attention_layernorm.weight"] = torch.ones(HIDDEN, dtype=dtype)
        for index, (name, (k, n)) in enumerate(LINEARS.items()):
            w = torch.randn(k, n, generator=gen) * k**-0.5
            t = quantize_gptq(
                w,
                group_size,
                symmetric=symmetric,
                act_order=act_order,
                dtype=dtype,
                checkpoint_format=checkpoint_format,
                seed=seed * 1000 + layer * 100 + index,
            )
            g = k if group_size == -1 else group_size
            g_idx = t.g_idx if t.g_idx is not None else (torch.arange(k, dtype=torch.int32) // g)
            prefix = f"{block}.{name}"
            state.update(
                {
                    f"{prefix}.qweight": t.qweight,
                    f"{prefix}.qzeros": t.qzeros,
                    f"{prefix}.scales": t.scales,
                    f"{prefix}.g_idx": g_idx,
                }
            )
            float_weights[prefix] = w
    config = _llama_config(dtype, quantization_config)
    (path / "config.json").write_text(json.dumps(config, indent=2))
    (path / "quantize_config.json").write_text(json.dumps(quantization_config, indent=2))
    torch.save(state, path / WEIGHTS_FILE)
    return TinyCheckpoint(path, config, float_weights)


def load_tiny_checkpoint(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """config.json and the state dict of a folder written by build_tiny_gptq_checkpoint."""
    config = json.loads((path / "config.json").read_text())
    state = torch.load(path / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    return config, state


def dequantize_gptq_checkpoint(
    qweight: torch.Tensor,
    qzeros: torch.Tensor,
    scales: torch.Tensor,
    g_idx: torch.Tensor,
    *,
    symmetric: bool,
    checkpoint_format: CheckpointFormat,
) -> torch.Tensor:
    """W [K, N] in fp32 straight from the GPTQ format's definition (row k is in group g_idx[k]).

    Written for checking, independent of `formats`' reordering: w = (q - zero) * scale, where
    zero is 8 for a symmetric layer and otherwise the stored nibble (+1 mod 16 in v1 "gptq").
    """
    q = unpack_rows(qweight)
    groups = g_idx.long()
    if symmetric:
        zero = torch.full_like(q, 8)
    else:
        stored = unpack_cols(qzeros)
        zero = ((stored + 1) & 0xF if checkpoint_format == "gptq" else stored)[groups]
    return (q - zero).float() * scales.float()[groups]
