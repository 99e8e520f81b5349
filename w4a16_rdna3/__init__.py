"""W4A16 (4-bit GPTQ weights, fp16/bf16 activations) linear kernels for AMD RDNA3 (gfx1100)."""

from w4a16_rdna3._ops import gemm
from w4a16_rdna3.formats import KernelWeights, from_compressed_tensors, from_gptq
from w4a16_rdna3.platform import gcn_arch
from w4a16_rdna3.quantize import quantize
from w4a16_rdna3.reference import gemm_reference

__all__ = [
    "KernelWeights",
    "from_compressed_tensors",
    "from_gptq",
    "gcn_arch",
    "gemm",
    "gemm_reference",
    "quantize",
]
